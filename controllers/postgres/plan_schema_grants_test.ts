import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { RoleInfo, ServerSnapshot } from "./catalog.ts";
import { schemaRoles } from "./names.ts";
import { planSchemaGrants, planSchemaRoles, type SchemaGrantState } from "./plan_schema_grants.ts";
import { planUserInside, planUserServer, type UserSpec } from "./plan_user.ts";
import { parseSearchPath } from "./plan_user_schemas.ts";
import { utf8Length } from "./quote.ts";

const want = { kind: "Database", namespace: "ns", name: "shop" };
const claim = { want, adopt: false, consent: undefined, annotation: "dbtether.io/force-adopt" };

function role(name: string, comment: string | null = "dbtether:Database/ns/shop"): RoleInfo {
  return { name, canLogin: false, connectionLimit: -1, superuser: false, comment };
}

function snapshot(roles: string[] = []): ServerSnapshot {
  return {
    currentUser: "admin",
    versionNum: 180000,
    roles: new Map(roles.map((r) => [r, role(r)])),
    memberships: [],
    adminInherits: new Set(),
    settings: new Map(),
  };
}

Deno.test("schemaRoles are deterministic, distinct from the database's and length-safe", () => {
  assertEquals(schemaRoles("shop", "reporting"), {
    readonly: "shop.reporting_readonly",
    readwrite: "shop.reporting_readwrite",
    admin: "shop.reporting_admin",
  });
  const long = schemaRoles("d".repeat(40), "s".repeat(63));
  for (const r of Object.values(long)) assertEquals(utf8Length(r) <= 63, true, r);
  assertEquals(long, schemaRoles("d".repeat(40), "s".repeat(63)));
  const other = schemaRoles("d".repeat(40), "s".repeat(62) + "t");
  assertEquals(long.readonly === other.readonly, false);
});

Deno.test("planSchemaRoles: created with the Database's marker, nested, checked when they exist", () => {
  const fresh = planSchemaRoles({ database: "shop", schemas: ["app"], claim }, snapshot());
  assertEquals(fresh.created.map((s) => [s.sql, ...(s.together ?? [])]), [
    [
      'CREATE ROLE "shop.app_readonly" NOLOGIN',
      `COMMENT ON ROLE "shop.app_readonly" IS 'dbtether:Database/ns/shop'`,
    ],
    [
      'CREATE ROLE "shop.app_readwrite" NOLOGIN',
      `COMMENT ON ROLE "shop.app_readwrite" IS 'dbtether:Database/ns/shop'`,
    ],
    [
      'CREATE ROLE "shop.app_admin" NOLOGIN',
      `COMMENT ON ROLE "shop.app_admin" IS 'dbtether:Database/ns/shop'`,
    ],
  ]);
  assertEquals(fresh.out, [
    'GRANT "shop.app_readonly" TO "shop.app_readwrite"',
    'GRANT "shop.app_readwrite" TO "shop.app_admin"',
  ]);
  // A role of that name made by another tenant's Database is refused, not shared.
  const snap = snapshot(Object.values(schemaRoles("shop", "app")));
  snap.roles.set("shop.app_readonly", role("shop.app_readonly", "dbtether:Database/other/x"));
  let reason = "ok";
  try {
    planSchemaRoles({ database: "shop", schemas: ["app"], claim }, snap);
  } catch (e) {
    reason = (e as { reason: string }).reason;
  }
  assertEquals(reason, "RoleClaimedByOther");
});

Deno.test("planSchemaGrants", async (t) => {
  const fresh: SchemaGrantState = {
    schema: "app",
    readonlyUsage: false,
    adminCreate: false,
    relations: [
      { name: "t", kind: "r", readonlyOk: false, readwriteOk: false },
      { name: "v", kind: "v", readonlyOk: false, readwriteOk: true },
      { name: "t_id_seq", kind: "S", readonlyOk: false, readwriteOk: false },
    ],
    functions: [],
    defaultAcls: [],
  };
  await t.step("usage, create, grants and defaults for each creator IN SCHEMA", () => {
    const sql = planSchemaGrants({ database: "shop", creators: ["shop_owner", "admin"] }, [fresh])
      .map((s) => s.sql);
    assertEquals(sql, [
      'GRANT USAGE ON SCHEMA "app" TO "shop.app_readonly"',
      'GRANT CREATE ON SCHEMA "app" TO "shop.app_admin"',
      'GRANT SELECT ON TABLE "app"."t", "app"."v" TO "shop.app_readonly"',
      'GRANT SELECT ON SEQUENCE "app"."t_id_seq" TO "shop.app_readonly"',
      'GRANT INSERT, UPDATE, DELETE ON TABLE "app"."t" TO "shop.app_readwrite"',
      'GRANT USAGE ON SEQUENCE "app"."t_id_seq" TO "shop.app_readwrite"',
      ...["shop_owner", "admin"].flatMap((r) => [
        `ALTER DEFAULT PRIVILEGES FOR ROLE "${r}" IN SCHEMA "app" GRANT SELECT ON TABLES TO "shop.app_readonly"`,
        `ALTER DEFAULT PRIVILEGES FOR ROLE "${r}" IN SCHEMA "app" GRANT INSERT, UPDATE, DELETE ON TABLES TO "shop.app_readwrite"`,
        `ALTER DEFAULT PRIVILEGES FOR ROLE "${r}" IN SCHEMA "app" GRANT SELECT ON SEQUENCES TO "shop.app_readonly"`,
        `ALTER DEFAULT PRIVILEGES FOR ROLE "${r}" IN SCHEMA "app" GRANT USAGE ON SEQUENCES TO "shop.app_readwrite"`,
        `ALTER DEFAULT PRIVILEGES FOR ROLE "${r}" IN SCHEMA "app" GRANT EXECUTE ON FUNCTIONS TO "shop.app_readonly"`,
      ]),
    ]);
  });
  await t.step("converged: nothing", () => {
    const acls = [
      ["r", "shop.app_readonly", "SELECT"],
      ["r", "shop.app_readwrite", "INSERT"],
      ["r", "shop.app_readwrite", "UPDATE"],
      ["r", "shop.app_readwrite", "DELETE"],
      ["S", "shop.app_readonly", "SELECT"],
      ["S", "shop.app_readwrite", "USAGE"],
      ["f", "shop.app_readonly", "EXECUTE"],
    ].map(([objects, grantee, privilege]) => ({
      forRole: "shop_owner",
      objects: objects!,
      grantee: grantee!,
      privilege: privilege!,
    }));
    const done: SchemaGrantState = {
      schema: "app",
      readonlyUsage: true,
      adminCreate: true,
      relations: fresh.relations.map((r) => ({ ...r, readonlyOk: true, readwriteOk: true })),
      functions: [],
      defaultAcls: acls,
    };
    assertEquals(planSchemaGrants({ database: "shop", creators: ["shop_owner"] }, [done]), []);
    const grants = (functions: SchemaGrantState["functions"]) =>
      planSchemaGrants({ database: "shop", creators: ["shop_owner"] }, [{ ...done, functions }])
        .map((s) => s.sql);
    // Existing functions: EXECUTE where one misses it, never where the server would refuse
    // the statement or an extension keeps a function from the group.
    assertEquals(grants([{ schema: "app", missing: true, blocked: false }]), [
      'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA "app" TO "shop.app_readonly"',
    ]);
    assertEquals(grants([{ schema: "app", missing: true, blocked: true }]), []);
    assertEquals(grants([{ schema: "app", missing: false, blocked: false }]), []);
  });
});

Deno.test("a user's schemas: memberships, downgrades, search_path, defaults", async (t) => {
  const groups = schemaRoles("shop", "reporting");
  const names = [
    "shop_owner",
    "shop_readonly",
    "shop_readwrite",
    "shop_admin",
    ...Object.values(groups),
  ];
  const spec = (level: "readonly" | "admin"): UserSpec => ({
    username: "u",
    marker: { namespace: "ns", name: "u" },
    databases: [{ name: "shop", level: "none", schemas: [{ name: "reporting", level }] }],
  });
  const snap = () => {
    const s = snapshot(names);
    s.roles.set("u", { ...role("u", "dbtether:DatabaseUser/ns/u"), canLogin: true });
    return s;
  };
  await t.step("schema readonly only: one membership and the search_path", () => {
    assertEquals(planUserServer(spec("readonly"), snap()).map((s) => s.sql), [
      'GRANT "shop.reporting_readonly" TO "u"',
      'ALTER ROLE "u" IN DATABASE "shop" SET search_path = "reporting"',
    ]);
  });
  await t.step("downgrade from admin to readonly revokes the admin group", () => {
    const s = snap();
    s.memberships.push({ role: groups.admin, member: "u", adminOption: false });
    s.settings.set("u", new Map([["shop", new Map([["search_path", "reporting"]])]]));
    assertEquals(planUserServer(spec("readonly"), s).map((x) => x.sql), [
      'REVOKE "shop.reporting_admin" FROM "u"',
      'GRANT "shop.reporting_readonly" TO "u"',
    ]);
  });
  await t.step("a schema not declared in the Database: waits with a clear reason", () => {
    const s = snapshot(names.slice(0, 4));
    s.roles.set("u", { ...role("u", "dbtether:DatabaseUser/ns/u"), canLogin: true });
    let msg = "";
    try {
      planUserServer(spec("readonly"), s);
    } catch (e) {
      msg = `${(e as { reason: string }).reason}: ${(e as Error).message}`;
    }
    assertEquals(msg.startsWith("DatabaseNotReady: "), true, msg);
    assertEquals(msg.includes("not declared in the Database's spec.schemas"), true, msg);
  });
  await t.step("schema admin: the admin acts for u, defaults FOR ROLE u IN SCHEMA", () => {
    assertEquals(
      planUserServer(spec("admin"), snap()).map((x) => x.sql).at(-1),
      'GRANT "u" TO "admin"',
    );
    const inside = planUserInside(spec("admin"), spec("admin").databases[0]!, {
      defaultAcls: [],
      directGrants: [],
      owned: [],
      schemaDefaults: [{ schema: "reporting", acls: [] }],
    }).map((s) => s.sql);
    assertEquals(inside.filter((s) => s.includes("IN SCHEMA")).length, 5);
    assertEquals(inside.filter((s) => s.includes('FOR ROLE "u" GRANT')).length, 6);
    assert(
      inside.includes(
        'ALTER DEFAULT PRIVILEGES FOR ROLE "u" IN SCHEMA "reporting" GRANT EXECUTE ON FUNCTIONS TO "shop.reporting_readonly"',
      ),
      inside.join("\n"),
    );
    // Back to readonly: the defaults it had are revoked.
    const had = [
      { forRole: "u", objects: "r", grantee: groups.readonly, privilege: "SELECT" },
      { forRole: "u", objects: "f", grantee: groups.readonly, privilege: "EXECUTE" },
    ];
    const back = planUserInside(spec("readonly"), spec("readonly").databases[0]!, {
      defaultAcls: [],
      directGrants: [],
      owned: [],
      schemaDefaults: [{ schema: "reporting", acls: had }],
    }).map((s) => s.sql);
    assertEquals(back, [
      'ALTER DEFAULT PRIVILEGES FOR ROLE "u" IN SCHEMA "reporting" REVOKE SELECT ON TABLES FROM "shop.reporting_readonly"',
      'ALTER DEFAULT PRIVILEGES FOR ROLE "u" IN SCHEMA "reporting" REVOKE EXECUTE ON FUNCTIONS FROM "shop.reporting_readonly"',
    ]);
  });
  await t.step(
    "owner of a schema (Database owner.databaseUser): defaults as a schema admin",
    () => {
      const owner: UserSpec = {
        ...spec("readonly"),
        databases: [{ name: "shop", level: "readwrite", ownedSchemas: ["ledger"] }],
      };
      const db = owner.databases[0]!;
      const snapOf = (acls: { schema: string; acls: [] }[]) => ({
        defaultAcls: [],
        directGrants: [],
        owned: [],
        schemaDefaults: acls,
      });
      const inside = planUserInside(owner, db, snapOf([{ schema: "ledger", acls: [] }]))
        .map((x) => x.sql);
      assertEquals(inside.filter((x) => x.includes('FOR ROLE "u" GRANT')).length, 6);
      assertEquals(inside.filter((x) => x.includes('IN SCHEMA "ledger" GRANT')).length, 5);
      // No longer the owner, a readwrite user: nothing granted for what it creates.
      const after = planUserInside(
        { ...owner, databases: [{ name: "shop", level: "readwrite" }] },
        { name: "shop", level: "readwrite" },
        snapOf([]),
      ).map((x) => x.sql);
      assertEquals(after.filter((x) => x.includes("GRANT")), []);
      assertEquals(planUserServer(owner, snap()).map((x) => x.sql).at(-1), 'GRANT "u" TO "admin"');
    },
  );
  await t.step("stored search_path values are parsed back to names", () => {
    assertEquals(parseSearchPath("reporting, app"), ["reporting", "app"]);
    assertEquals(parseSearchPath('"we""ird; x", "App"'), ['we"ird; x', "App"]);
    assertEquals(parseSearchPath("a"), ["a"]);
  });
});
