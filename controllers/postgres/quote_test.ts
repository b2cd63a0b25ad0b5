import {
  assertEquals,
  assertMatch,
  assertStrictEquals,
  assertThrows,
} from "../../tests/helpers/assert.ts";
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
    await t.step(JSON.stringify(name), () => assertStrictEquals(userIdent(name), want));
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
      const e = assertThrows(
        () => userIdent(name, { adminRole: "dbtether_admin" }),
        InvalidIdentifierError,
      );
      assertStrictEquals(e.reason, "InvalidName");
      assertMatch(e.message, /^Invalid name .*: /);
      assertMatch(e.message, want);
    });
  }
});

Deno.test("identifierProblem accepts 63 bytes and names near reserved ones", () => {
  for (const ok of ["a".repeat(63), "postgres2", "my_pg_db", "publicity", "rds", "all_users"]) {
    assertStrictEquals(identifierProblem(ok, { adminRole: "dbtether_admin" }), undefined, ok);
  }
});

Deno.test("ident allows system names but still checks structure", () => {
  assertStrictEquals(ident("public"), '"public"');
  assertStrictEquals(ident("pg_catalog"), '"pg_catalog"');
  assertThrows(() => ident(""), InvalidIdentifierError);
  assertThrows(() => ident("a".repeat(64)), InvalidIdentifierError);
});

Deno.test("qualified joins quoted names; parseTableName splits schema.table, quotes honoured", async (t) => {
  assertStrictEquals(qualified(ident("s"), ident("t.x")), '"s"."t.x"');
  const cases: [string, { schema?: string; name: string }][] = [
    ["orders", { name: "orders" }],
    ["sales.orders", { schema: "sales", name: "orders" }],
    ['"my.schema"."my ""t"', { schema: "my.schema", name: 'my "t' }],
    ['"a.b"', { name: "a.b" }],
  ];
  for (const [ref, want] of cases) {
    await t.step(ref, () => assertEquals(parseTableName(ref), want));
  }
  for (const bad of ["a.b.c", ".x", "x.", '"open', '"a"b']) {
    await t.step(`rejects ${bad}`, () => {
      assertThrows(() => parseTableName(bad));
    });
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
  for (const [v, want] of cases) await t.step(v, () => assertStrictEquals(literal(v), want));
  assertThrows(() => literal("a\0b"), Error, "NUL");
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
    await t.step(JSON.stringify(name), () => assertStrictEquals(catalogIdent(name), want));
  }
  await t.step("NUL and empty names are refused", () => {
    assertThrows(() => catalogIdent("a\0b"), InvalidIdentifierError);
    assertThrows(() => catalogIdent(""), InvalidIdentifierError);
  });
});
