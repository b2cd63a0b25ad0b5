import { assertEquals } from "../../tests/helpers/assert.ts";
import {
  extensionDifferences,
  type ExtensionState,
  mergeExtensions,
  planExtensions,
} from "./plan_extensions.ts";

const state = (o: Partial<ExtensionState> = {}): ExtensionState => ({
  installed: new Map(),
  available: new Map([["hstore", ["1.4", "1.5", "1.8"]], ["pg_trgm", ["1.3", "1.6"]]]),
  ...o,
});

const sqlOf = (s: ReturnType<typeof planExtensions>[number]) =>
  s.kind === "apply" ? [s.statement.sql, ...s.statement.together ?? []] : s;

Deno.test("planExtensions", async (t) => {
  const plan = (wanted: Parameters<typeof planExtensions>[0], st = state()) =>
    planExtensions(wanted, { database: "app", state: st }).map(sqlOf);
  await t.step("missing: CREATE with schema and version, quoted", () => {
    assertEquals(plan([{ name: "hstore", version: "1.4", schema: 'a"pp' }, { name: "pg_trgm" }]), [
      [
        "SET LOCAL search_path TO public",
        `CREATE EXTENSION IF NOT EXISTS "hstore" SCHEMA "a""pp" VERSION '1.4'`,
      ],
      ["SET LOCAL search_path TO public", 'CREATE EXTENSION IF NOT EXISTS "pg_trgm"'],
    ]);
  });
  const installed = new Map([["hstore", { version: "1.4", schema: "app" }]]);
  await t.step("installed: UPDATE TO only when the version changed", () => {
    assertEquals(plan([{ name: "hstore", version: "1.5" }], state({ installed })), [
      ["SET LOCAL search_path TO public", `ALTER EXTENSION "hstore" UPDATE TO '1.5'`],
    ]);
    assertEquals(plan([{ name: "hstore", version: "1.4" }], state({ installed })), [
      { name: "hstore", kind: "present" },
    ]);
    assertEquals(plan([{ name: "hstore" }], state({ installed })), [
      { name: "hstore", kind: "present" },
    ]);
  });
  await t.step("a version or an extension the server lacks: a reason, no SQL", () => {
    assertEquals(plan([{ name: "hstore", version: "9.9'; DROP" }]), [{
      name: "hstore",
      kind: "refused",
      message:
        `version "9.9'; DROP" is not available on the server (available: "1.4", "1.5", "1.8")`,
    }]);
    assertEquals(plan([{ name: "hstore", version: "2.0" }], state({ installed }))[0], {
      name: "hstore",
      kind: "refused",
      message: 'version "2.0" is not available on the server (available: "1.4", "1.5", "1.8")',
    });
    assertEquals(plan([{ name: "nope" }]), [{
      name: "nope",
      kind: "refused",
      message: "it is not available on the server (pg_available_extensions)",
    }]);
  });
  await t.step("a managed service's allow-list", () => {
    const allowList = { setting: "rds.allowed_extensions", names: ["pg_trgm"] };
    assertEquals(plan([{ name: "hstore" }, { name: "pg_trgm" }], state({ allowList })), [
      {
        name: "hstore",
        kind: "refused",
        message: `the server's rds.allowed_extensions does not allow it (allowed: "pg_trgm")`,
      },
      ["SET LOCAL search_path TO public", 'CREATE EXTENSION IF NOT EXISTS "pg_trgm"'],
    ]);
  });
});

Deno.test("extensionDifferences and mergeExtensions", () => {
  const installed = new Map([["hstore", { version: "1.4", schema: "public" }]]);
  assertEquals(
    extensionDifferences([{ name: "hstore", schema: "app" }], state({ installed })),
    ['extension "hstore" schema: spec "app", database "public"'],
  );
  assertEquals(extensionDifferences([{ name: "hstore" }], state({ installed })), []);
  assertEquals(mergeExtensions(["a", "b"], [{ name: "b", version: "1" }]), [
    { name: "a" },
    { name: "b", version: "1" },
  ]);
});
