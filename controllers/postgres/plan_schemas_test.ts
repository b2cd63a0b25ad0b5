import { assert, assertEquals, assertThrows } from "../../tests/helpers/assert.ts";
import { TerminalError } from "../../lib/errors.ts";
import type { Statement } from "./statements.ts";
import type { ServerSnapshot } from "./catalog.ts";
import { planDatabaseServer } from "./plan.ts";
import { planSchemas, type SchemasSpec, type SchemaState } from "./plan_schemas.ts";

const marker = { namespace: "shop-ns", name: "shop" };
const base: SchemasSpec = {
  database: "shop",
  marker,
  schemas: [{ name: "app", owner: "owner", deletionPolicy: "Retain" }],
  publicSchema: "keep",
  forceAdopt: false,
};

function schema(name: string, o: Partial<SchemaState> = {}): SchemaState {
  return {
    name,
    owner: "shop_owner",
    comment: "dbtether:Schema/shop-ns/shop",
    ownerActable: true,
    ownerComment: "dbtether:Database/shop-ns/shop",
    publicUsage: false,
    publicCreate: false,
    ...o,
  };
}

const sqlOf = (p: { ensure: Statement[]; remove: Statement[] }) =>
  [...p.ensure, ...p.remove].flatMap((s) => [s.sql, ...(s.together ?? [])]);

Deno.test("planSchemas", async (t) => {
  await t.step("a missing schema is created with its claim in one transaction", () => {
    const p = planSchemas(base, []);
    assertEquals(p.ensure, [{
      sql: 'CREATE SCHEMA IF NOT EXISTS "app" AUTHORIZATION "shop_owner"',
      database: "shop",
      together: [`COMMENT ON SCHEMA "app" IS 'dbtether:Schema/shop-ns/shop'`],
    }]);
    assertEquals(p.remove, []);
  });

  await t.step("a converged schema sends nothing", () => {
    assertEquals(
      sqlOf(planSchemas(base, [schema("app"), schema("public", { comment: null })])),
      [],
    );
  });

  await t.step("owner level and deletion policy changes", () => {
    const spec = {
      ...base,
      schemas: [{ name: "app", owner: "readwrite", deletionPolicy: "Delete" }],
    };
    assertEquals(sqlOf(planSchemas(spec as SchemasSpec, [schema("app")])), [
      'ALTER SCHEMA "app" OWNER TO "shop_readwrite"',
      `COMMENT ON SCHEMA "app" IS 'dbtether:SchemaDelete/shop-ns/shop'`,
    ]);
  });

  await t.step("names are quoted exactly", () => {
    const name = 'a"; DROP TABLE x; --';
    const spec = { ...base, schemas: [{ ...base.schemas[0]!, name }] };
    assertEquals(
      planSchemas(spec, []).ensure[0]!.sql,
      'CREATE SCHEMA IF NOT EXISTS "a""; DROP TABLE x; --" AUTHORIZATION "shop_owner"',
    );
  });

  await t.step("reserved and too long names are refused", () => {
    for (
      const name of ["pg_x", "PG_x", "public", "information_schema", "x".repeat(64), "é".repeat(32)]
    ) {
      const spec = { ...base, schemas: [{ ...base.schemas[0]!, name }] };
      const e = assertThrows(() => planSchemas(spec, []), TerminalError);
      assertEquals(e.reason, "InvalidName", name);
    }
  });

  await t.step("an unmarked schema is not taken over without the annotation and consent", () => {
    const have = [schema("app", { comment: null, owner: "someone", ownerComment: null })];
    const e = assertThrows(() => planSchemas(base, have), TerminalError);
    assertEquals(e.reason, "SchemaExistsUnmanaged");
    const noConsent = assertThrows(
      () => planSchemas({ ...base, forceAdopt: true }, have),
      TerminalError,
    );
    assertEquals(noConsent.reason, "AdoptionNotAllowed");
    const consent = { granted: true, how: "" };
    assertEquals(sqlOf(planSchemas({ ...base, forceAdopt: true, consent }, have)), [
      'ALTER SCHEMA "app" OWNER TO "shop_owner"',
      `COMMENT ON SCHEMA "app" IS 'dbtether:Schema/shop-ns/shop'`,
    ]);
    const unreachable = [{ ...have[0]!, ownerActable: false }];
    const e2 = assertThrows(
      () => planSchemas({ ...base, forceAdopt: true, consent }, unreachable),
      TerminalError,
    );
    assertEquals(e2.reason, "SchemaExistsUnmanaged");
  });

  await t.step("a schema of another namespace is never taken, whatever the consent", () => {
    const adopt = { ...base, forceAdopt: true, consent: { granted: true, how: "" } };
    for (
      const s of [
        schema("app", { comment: "dbtether:Schema/other/shop" }),
        schema("app", {
          comment: null,
          owner: "t2",
          ownerComment: "dbtether:DatabaseUser/other/t2",
        }),
      ]
    ) {
      const e = assertThrows(() => planSchemas(adopt, [s]), TerminalError);
      assertEquals(e.reason, "SchemaClaimedByOther");
    }
  });

  await t.step("removed entries: Retain releases, Delete drops RESTRICT, after the rest", () => {
    const have = [
      schema("old_keep"),
      schema("old_drop", { comment: "dbtether:SchemaDelete/shop-ns/shop" }),
      schema("theirs", { comment: "dbtether:SchemaDelete/shop-ns/other" }),
      schema("app"),
    ];
    const p = planSchemas(base, have);
    assertEquals(p.ensure, []);
    assertEquals(p.remove.map((s) => s.sql), [
      'COMMENT ON SCHEMA "old_keep" IS NULL',
      'DROP SCHEMA IF EXISTS "old_drop" RESTRICT',
    ]);
  });

  await t.step("publicSchema lockdown and drop", () => {
    const pub = schema("public", { comment: null, publicUsage: true, publicCreate: true });
    const lock = planSchemas({ ...base, publicSchema: "lockdown" }, [schema("app"), pub]);
    assertEquals(lock.remove.map((s) => s.sql), [
      'GRANT USAGE ON SCHEMA "public" TO "shop_readonly"',
      'REVOKE USAGE, CREATE ON SCHEMA "public" FROM PUBLIC',
    ]);
    // PostgreSQL 15+: PUBLIC has USAGE only.
    const pub15 = { ...pub, publicCreate: false };
    const lock15 = planSchemas({ ...base, publicSchema: "lockdown" }, [schema("app"), pub15]);
    assertEquals(lock15.remove.map((s) => s.sql), [
      'GRANT USAGE ON SCHEMA "public" TO "shop_readonly"',
      'REVOKE USAGE ON SCHEMA "public" FROM PUBLIC',
    ]);
    const done = { ...pub, publicUsage: false, publicCreate: false };
    assertEquals(
      sqlOf(planSchemas({ ...base, publicSchema: "lockdown" }, [schema("app"), done])),
      [],
    );
    const drop = planSchemas({ ...base, publicSchema: "drop" }, [schema("app"), pub]);
    assertEquals(drop.remove.map((s) => s.sql), ['DROP SCHEMA IF EXISTS "public" RESTRICT']);
    assertEquals(sqlOf(planSchemas({ ...base, publicSchema: "drop" }, [schema("app")])), []);
    const e = assertThrows(
      () => planSchemas({ ...base, publicSchema: "lockdown" }, [{ ...pub, ownerActable: false }]),
      TerminalError,
    );
    assertEquals(e.reason, "PermissionDenied");
  });
});

Deno.test("planDatabaseServer: the admin may SET the roles that own declared schemas", () => {
  const snap: ServerSnapshot = {
    currentUser: "admin",
    versionNum: 160000,
    roles: new Map(),
    memberships: [],
    adminInherits: new Set(["shop_owner", "shop_admin"]),
    settings: new Map(),
  };
  const grants = planDatabaseServer({
    database: "shop",
    marker,
    revokePublicConnect: true,
    schemas: [
      { name: "a", owner: "admin", deletionPolicy: "Retain" },
      { name: "b", owner: "readonly", deletionPolicy: "Retain" },
    ],
  }, snap).map((s) => s.sql).filter((s) => s.endsWith('TO "admin"'));
  assertEquals(grants, ['GRANT "shop_readonly" TO "admin"']);
});

Deno.test("planSchemas: a DatabaseUser as owner", async (t) => {
  const userMarker = { kind: "DatabaseUser", namespace: "shop-ns", name: "migrator" };
  const spec = (o: Partial<SchemasSpec> = {}): SchemasSpec => ({
    ...base,
    schemas: [{
      name: "app",
      owner: { kind: "user", user: "migrator", role: "mig", marker: userMarker },
      deletionPolicy: "Retain",
    }],
    admin: "admin",
    ...o,
  });
  const ours = new Map([["mig", {
    comment: "dbtether:DatabaseUser/shop-ns/migrator",
    adminHas: false,
  }]]);
  await t.step("its role gets the schema; the admin first gets SET on the role", () => {
    const p = planSchemas(spec({ ownerRoles: ours }), []);
    assertEquals(sqlOf(p), [
      'GRANT "mig" TO "admin"',
      'CREATE SCHEMA IF NOT EXISTS "app" AUTHORIZATION "mig"',
      `COMMENT ON SCHEMA "app" IS 'dbtether:Schema/shop-ns/shop'`,
    ]);
    assertEquals(p.waiting, []);
    assertEquals(p.owners, ["mig"]);
  });
  await t.step("an existing schema is re-owned; a converged one sends nothing", () => {
    const held = new Map([["mig", { ...ours.get("mig")!, adminHas: true }]]);
    assertEquals(sqlOf(planSchemas(spec({ ownerRoles: held }), [schema("app")])), [
      'ALTER SCHEMA "app" OWNER TO "mig"',
    ]);
    assertEquals(
      sqlOf(planSchemas(spec({ ownerRoles: held }), [schema("app", { owner: "mig" })])),
      [],
    );
  });
  const waits: [string, SchemasSpec, string][] = [
    [
      "its role does not exist",
      spec({ ownerRoles: new Map() }),
      'its role "mig" does not exist yet',
    ],
    [
      "the role is another tenant's (or nobody's)",
      spec({
        ownerRoles: new Map([["mig", {
          comment: "dbtether:DatabaseUser/other/mig",
          adminHas: true,
        }]]),
      }),
      'role "mig" was not created by dbtether for this DatabaseUser',
    ],
    [
      "the Database planner found it not usable",
      spec({
        schemas: [{
          name: "app",
          owner: { kind: "waiting", user: "migrator", message: "it is being deleted" },
          deletionPolicy: "Delete",
        }],
      }),
      "it is being deleted",
    ],
  ];
  for (const [name, s, why] of waits) {
    await t.step(`${name}: the schema is neither created, re-owned nor dropped`, () => {
      const none = planSchemas(s, []);
      assertEquals(sqlOf(none), []);
      assert(none.waiting[0]!.message.endsWith(why), none.waiting[0]!.message);
      assertEquals(none.waiting.map((w) => [w.schema, w.user]), [["app", "migrator"]]);
      // dropUser reassigned it to the owner role: it stays so, claimed, and is not dropped.
      const kept = planSchemas(s, [
        schema("app", { comment: "dbtether:SchemaDelete/shop-ns/shop" }),
      ]);
      assertEquals(sqlOf(kept), []);
      assertEquals(kept.owners, []);
    });
  }
});
