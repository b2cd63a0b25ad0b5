import assert from "node:assert/strict";
import {
  catalogIdent,
  ident,
  identifierProblem,
  InvalidIdentifierError,
  literal,
  parseTableName,
  qualified,
  userIdent,
} from "./quote.ts";

Deno.test("userIdent quotes hostile names exactly", async (t) => {
  const cases: [string, string][] = [
    ["app", '"app"'],
    ["my-app", '"my-app"'],
    ["MyApp", '"MyApp"'],
    ['a"b', '"a""b"'],
    ['"', '""""'],
    ["with space", '"with space"'],
    ["x; DROP ROLE y", '"x; DROP ROLE y"'],
    ['x"; DROP ROLE y; --', '"x""; DROP ROLE y; --"'],
    ["a.b", '"a.b"'],
    ["it's", `"it's"`],
    ["back\\slash", '"back\\slash"'],
    ["ünïcödé", '"ünïcödé"'],
    ["日本語".repeat(7), `"${"日本語".repeat(7)}"`], // 63 bytes
  ];
  for (const [name, want] of cases) {
    await t.step(JSON.stringify(name), () => assert.equal(userIdent(name), want));
  }
});

Deno.test("userIdent rejects invalid and reserved names", async (t) => {
  const cases: [string, RegExp][] = [
    ["", /must not be empty/],
    ["a".repeat(64), /64 bytes long, the limit is 63/],
    ["日本語".repeat(7) + "a", /64 bytes long/],
    ["é".repeat(32), /64 bytes long/],
    ["nul\0byte", /control characters/],
    ["new\nline", /control characters/],
    ["\ud800lone", /not valid UTF-8/],
    ["postgres", /reserved/],
    ["Postgres", /reserved/],
    ["template0", /reserved/],
    ["template1", /reserved/],
    ["public", /reserved/],
    ["PUBLIC", /reserved/],
    ["none", /reserved/],
    ["current_user", /reserved/],
    ["session_user", /reserved/],
    ["current_role", /reserved/],
    ["user", /reserved/],
    ["all", /reserved/],
    ["rdsadmin", /reserved/],
    ["pg_monitor", /"pg_"/],
    ["rds_superuser", /"rds_"/],
    ["dbtether_admin", /admin role/],
  ];
  for (const [name, want] of cases) {
    await t.step(JSON.stringify(name), () => {
      assert.throws(() => userIdent(name, { adminRole: "dbtether_admin" }), (e: unknown) => {
        assert.ok(e instanceof InvalidIdentifierError);
        assert.equal(e.reason, "InvalidName");
        assert.match(e.message, /^Invalid name .*: /);
        assert.match(e.message, want);
        return true;
      });
    });
  }
});

Deno.test("identifierProblem accepts 63 bytes and names near reserved ones", () => {
  for (const ok of ["a".repeat(63), "postgres2", "my_pg_db", "publicity", "rds", "all_users"]) {
    assert.equal(identifierProblem(ok, { adminRole: "dbtether_admin" }), undefined, ok);
  }
});

Deno.test("ident allows system names but still checks structure", () => {
  assert.equal(ident("public"), '"public"');
  assert.equal(ident("pg_catalog"), '"pg_catalog"');
  assert.throws(() => ident(""), InvalidIdentifierError);
  assert.throws(() => ident("a".repeat(64)), InvalidIdentifierError);
});

Deno.test("qualified and parseTableName", async (t) => {
  assert.equal(qualified(ident("s"), ident("t.x")), '"s"."t.x"');
  const cases: [string, { schema?: string; name: string }][] = [
    ["orders", { name: "orders" }],
    ["sales.orders", { schema: "sales", name: "orders" }],
    ['"my.schema"."my ""t"', { schema: "my.schema", name: 'my "t' }],
    ['"a.b"', { name: "a.b" }],
  ];
  for (const [ref, want] of cases) {
    await t.step(ref, () => assert.deepEqual(parseTableName(ref), want));
  }
  for (const bad of ["a.b.c", ".x", "x.", '"open', '"a"b']) {
    await t.step(`rejects ${bad}`, () => assert.throws(() => parseTableName(bad)));
  }
});

Deno.test("literal quotes like quote_literal and rejects NUL", async (t) => {
  const cases: [string, string][] = [
    ["plain", "'plain'"],
    ["it's", "'it''s'"],
    ["a\\b", "E'a\\\\b'"],
    ["'; DROP ROLE x; --", "'''; DROP ROLE x; --'"],
    ["dbtether:ns/name", "'dbtether:ns/name'"],
  ];
  for (const [v, want] of cases) await t.step(v, () => assert.equal(literal(v), want));
  assert.throws(() => literal("a\0b"), /NUL/);
});

Deno.test("catalogIdent quotes every name the server can hold, control characters included", async (t) => {
  const cases: [string, string][] = [
    ["a\nb", '"a\nb"'],
    ["tab\there", '"tab\there"'],
    ["esc\u001b[31m", '"esc\u001b[31m"'],
    ['q"uote', '"q""uote"'],
    ["pg_catalog", '"pg_catalog"'],
  ];
  for (const [name, want] of cases) {
    await t.step(JSON.stringify(name), () => assert.equal(catalogIdent(name), want));
  }
  await t.step("NUL and empty names are refused", () => {
    assert.throws(() => catalogIdent("a\0b"), InvalidIdentifierError);
    assert.throws(() => catalogIdent(""), InvalidIdentifierError);
  });
});
