import {
  assert,
  assertEquals,
  assertMatch,
  assertNotStrictEquals,
  assertStrictEquals,
} from "../../tests/helpers/assert.ts";
import type {
  DatabaseInfo,
  DatabaseSnapshot,
  DefaultAcl,
  DirectGrant,
  RoleInfo,
  ServerSnapshot,
} from "./catalog.ts";
import { plainReach } from "./fixtures_test_util.ts";
import { boundedName, databaseRoles, formatMarker, parseMarker } from "./names.ts";
import { type DatabaseSpec, planDatabaseInside, planDatabaseServer } from "./plan.ts";
import { levelMemberships, planUserInside, planUserServer, type UserSpec } from "./plan_user.ts";
import { isMutating, redact, type TablePrivilege } from "./statements.ts";
import { utf8Length } from "./quote.ts";

function emptySnapshot(): ServerSnapshot {
  return {
    currentUser: "admin",
    versionNum: 150000,
    roles: new Map(),
    memberships: [],
    adminInherits: new Set(),
    settings: new Map(),
  };
}

Deno.test("planDatabaseServer on an empty server creates roles, database, claim, CONNECT", () => {
  const plan = planDatabaseServer(
    { database: "app", marker: { namespace: "ns", name: "app" }, revokePublicConnect: true },
    emptySnapshot(),
  );
  // Each role commits with its marker, so no interruption leaves an unmarked role behind.
  assertStrictEquals(
    plan.filter((s) => /^CREATE ROLE/.test(s.sql) && s.together?.length).length,
    4,
  );
  const sql = plan.flatMap((s) => [s.sql, ...(s.together ?? [])]);
  assertEquals(sql, [
    'CREATE ROLE "app_owner" NOLOGIN',
    `COMMENT ON ROLE "app_owner" IS 'dbtether:Database/ns/app'`,
    'CREATE ROLE "app_readonly" NOLOGIN',
    `COMMENT ON ROLE "app_readonly" IS 'dbtether:Database/ns/app'`,
    'CREATE ROLE "app_readwrite" NOLOGIN',
    `COMMENT ON ROLE "app_readwrite" IS 'dbtether:Database/ns/app'`,
    'CREATE ROLE "app_admin" NOLOGIN',
    `COMMENT ON ROLE "app_admin" IS 'dbtether:Database/ns/app'`,
    'GRANT "app_owner" TO "admin"',
    'GRANT "app_readonly" TO "app_readwrite"',
    'GRANT "app_readwrite" TO "app_admin"',
    'CREATE DATABASE "app" OWNER "app_owner"',
    `COMMENT ON DATABASE "app" IS 'dbtether:ns/app'`,
    'REVOKE CONNECT ON DATABASE "app" FROM PUBLIC',
    'GRANT CONNECT ON DATABASE "app" TO "app_readonly"',
  ]);
});

const GRANTED = { granted: true, how: "grant it" };
const DENIED = { granted: false, how: "list the namespace in spec.adoption" };

function dbRow(o: Partial<DatabaseInfo> = {}): DatabaseInfo {
  return {
    name: "app",
    owner: "legacy",
    comment: null,
    allowConnections: true,
    connect: ["PUBLIC"],
    aclDefault: false,
    ...o,
  };
}

function role(name: string, o: Partial<RoleInfo> = {}): RoleInfo {
  return { name, canLogin: false, connectionLimit: -1, superuser: false, comment: null, ...o };
}

const noReach = plainReach;

function reasonOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as { reason?: string }).reason ?? String(e);
  }
  return "ok";
}

Deno.test("planDatabaseServer: who may take an existing database", async (t) => {
  const spec = {
    database: "app",
    marker: { namespace: "ns", name: "app" },
    revokePublicConnect: true,
  };
  const adopt = { ...spec, forceAdopt: true, consent: GRANTED };
  const ownMarked = (comment: string) => {
    const snap = emptySnapshot();
    snap.reach = new Map();
    for (const r of Object.values(databaseRoles("app"))) {
      snap.roles.set(r, role(r, { comment }));
      snap.reach.set(r, noReach(r));
    }
    return snap;
  };
  const table: [string, DatabaseSpec, DatabaseInfo, ServerSnapshot, string][] = [
    [
      "ours",
      spec,
      dbRow({ comment: "dbtether:ns/app", owner: "app_owner" }),
      ownMarked("dbtether:Database/ns/app"),
      "ok",
    ],
    ["unmarked, no annotation", spec, dbRow(), emptySnapshot(), "DatabaseExistsUnmanaged"],
    [
      "unmarked, annotation, no consent",
      { ...spec, forceAdopt: true },
      dbRow(),
      emptySnapshot(),
      "AdoptionNotAllowed",
    ],
    [
      "unmarked, annotation, consent denied",
      { ...spec, forceAdopt: true, consent: DENIED },
      dbRow(),
      emptySnapshot(),
      "AdoptionNotAllowed",
    ],
    ["unmarked, annotation and consent", adopt, dbRow(), emptySnapshot(), "ok"],
    [
      "same namespace, no annotation",
      spec,
      dbRow({ comment: "dbtether:ns/other" }),
      emptySnapshot(),
      "DatabaseClaimedByOther",
    ],
    [
      "same namespace, annotation, no consent",
      { ...spec, forceAdopt: true },
      dbRow({ comment: "dbtether:ns/other" }),
      emptySnapshot(),
      "AdoptionNotAllowed",
    ],
    [
      "same namespace, annotation and consent",
      adopt,
      dbRow({ comment: "dbtether:ns/other" }),
      ownMarked("dbtether:Database/ns/other"),
      "ok",
    ],
    [
      "other namespace, annotation and consent",
      adopt,
      dbRow({ comment: "dbtether:team-a/app" }),
      emptySnapshot(),
      "DatabaseClaimedByOther",
    ],
    [
      "created by us, crash before the COMMENT",
      spec,
      dbRow({ owner: "app_owner", aclDefault: true }),
      ownMarked("dbtether:Database/ns/app"),
      "ok",
    ],
    [
      "released by us (grants were made)",
      spec,
      dbRow({ owner: "app_owner" }),
      ownMarked("dbtether:Database/ns/app"),
      "DatabaseExistsUnmanaged",
    ],
    [
      "pristine, but owner role of another resource",
      spec,
      dbRow({ owner: "app_owner", aclDefault: true }),
      ownMarked("dbtether:Database/ns/x"),
      "DatabaseExistsUnmanaged",
    ],
    [
      "roles of another namespace, database released",
      adopt,
      dbRow({ owner: "app_owner" }),
      ownMarked("dbtether:Database/team-a/app"),
      "RoleClaimedByOther",
    ],
  ];
  for (const [name, s, db, snap, want] of table) {
    await t.step(name, () => {
      snap.database = db;
      assertStrictEquals(reasonOf(() => planDatabaseServer(s, snap)), want);
    });
  }
  await t.step("an adopted database changes owner and claim; a refused one sends nothing", () => {
    const snap = emptySnapshot();
    snap.database = dbRow();
    const sql = planDatabaseServer(adopt, snap).map((s) => s.sql);
    assert(sql.includes('ALTER DATABASE "app" OWNER TO "app_owner"'));
    assert(sql.includes(`COMMENT ON DATABASE "app" IS 'dbtether:ns/app'`));
  });
  await t.step("an unmarked group role is judged like any adopted role", () => {
    const snap = emptySnapshot();
    snap.database = dbRow();
    snap.roles.set("app_owner", role("app_owner"));
    const reach = noReach("app_owner");
    reach.roles[0]!.createRole = true;
    snap.reach = new Map([["app_owner", reach]]);
    assertStrictEquals(reasonOf(() => planDatabaseServer(adopt, snap)), "RoleIsPrivileged");
    snap.reach = new Map([["app_owner", noReach("app_owner")]]);
    assertStrictEquals(reasonOf(() => planDatabaseServer(adopt, snap)), "ok");
  });
});

Deno.test("planUserServer: who may take an existing role", async (t) => {
  const spec = { username: "u", marker: { namespace: "ns", name: "u" }, databases: [] };
  const adopt = { ...spec, adopt: true, consent: GRANTED };
  const table: [string, UserSpec, string | null, string][] = [
    ["ours", spec, "dbtether:DatabaseUser/ns/u", "ok"],
    ["unmarked, no annotation", spec, null, "RoleExistsUnmanaged"],
    ["unmarked, annotation, no consent", { ...spec, adopt: true }, null, "AdoptionNotAllowed"],
    ["unmarked, annotation and consent", adopt, null, "ok"],
    [
      "another user's role, same namespace",
      adopt,
      "dbtether:DatabaseUser/ns/v",
      "RoleClaimedByOther",
    ],
    ["another tenant's role", adopt, "dbtether:DatabaseUser/team-a/alice", "RoleClaimedByOther"],
    ["a Database's owner role", adopt, "dbtether:Database/ns/shop", "RoleIsDatabaseRole"],
    ["a PostgresDatabase's role", adopt, "dbtether:PostgresDatabase/ns/pg", "RoleClaimedByOther"],
    ["a comment that is not a marker", adopt, "legacy app", "ok"],
  ];
  for (const [name, s, comment, want] of table) {
    await t.step(name, () => {
      const snap = emptySnapshot();
      snap.roles.set("u", role("u", { canLogin: true, comment }));
      snap.reach = new Map([["u", noReach("u")]]);
      assertStrictEquals(reasonOf(() => planUserServer(s, snap)), want);
    });
  }
  await t.step("the admin role is refused by name, whatever the annotations", () => {
    const snap = emptySnapshot();
    snap.roles.set("admin", role("admin", { canLogin: true }));
    assertStrictEquals(
      reasonOf(() => planUserServer({ ...adopt, username: "admin" }, snap)),
      "InvalidName",
    );
  });
  await t.step("adoption writes the marker and nothing before the checks pass", () => {
    const snap = emptySnapshot();
    snap.roles.set("u", role("u", { canLogin: true }));
    snap.reach = new Map([["u", noReach("u")]]);
    const sql = planUserServer(adopt, snap).map((s) => s.sql);
    assertEquals(sql, [`COMMENT ON ROLE "u" IS 'dbtether:DatabaseUser/ns/u'`]);
  });
});

Deno.test("levelMemberships: each level's group roles", () => {
  const r = databaseRoles("d");
  assertEquals([...levelMemberships("readonly", r)], [["d_readonly", false]]);
  assertEquals([...levelMemberships("readwrite", r)], [["d_readwrite", false]]);
  assertEquals([...levelMemberships("admin", r)], [["d_admin", false], ["d_owner", false]]);
  assert([...levelMemberships("owner", r).values()].every((admin) => admin));
});

Deno.test("names: bounded, deterministic, distinct for long names", () => {
  const long = "x".repeat(60);
  const a = databaseRoles(long);
  assert(utf8Length(a.readwrite) <= 63);
  assertStrictEquals(databaseRoles(long).readwrite, a.readwrite);
  assertNotStrictEquals(databaseRoles(long + "y").readwrite, a.readwrite);
  assert(utf8Length(boundedName("é".repeat(40), "_owner")) <= 63);
  assertStrictEquals(boundedName("short", "_owner"), "short_owner");
});

Deno.test("ownership markers: formatted, parsed back, and anything else is no marker", () => {
  assertStrictEquals(formatMarker({ namespace: "ns", name: "n" }), "dbtether:ns/n");
  assertEquals(parseMarker("dbtether:ns/n"), { namespace: "ns", name: "n" });
  assertEquals(parseMarker("dbtether:DatabaseUser/ns/n"), {
    kind: "DatabaseUser",
    namespace: "ns",
    name: "n",
  });
  for (const bad of [null, "", "app comment", "dbtether:", "dbtether:a//b", "dbtether:a/b/c/d"]) {
    assertStrictEquals(parseMarker(bad), undefined);
  }
});

Deno.test("redact hides password literals; isMutating classifies statements", () => {
  assertStrictEquals(
    redact(`CREATE ROLE "u" LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi'`),
    `CREATE ROLE "u" LOGIN PASSWORD '<redacted>'`,
  );
  assertStrictEquals(
    redact(`ALTER ROLE "u" password E'it''s\\\\x'`),
    `ALTER ROLE "u" PASSWORD '<redacted>'`,
  );
  assert(isMutating("GRANT x TO y"));
  assert(!isMutating("SELECT 1"));
});

Deno.test("planUserServer creates a role and its marker in one transaction", () => {
  const spec = {
    username: "u",
    marker: { namespace: "ns", name: "u" },
    databases: [],
    passwordVerifier: "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5",
  };
  const [create, ...rest] = planUserServer(spec, emptySnapshot());
  assertMatch(create!.sql, /^CREATE ROLE "u" LOGIN/);
  assertEquals(create!.together, [`COMMENT ON ROLE "u" IS 'dbtether:DatabaseUser/ns/u'`]);
  assert(!rest.some((s) => s.sql.startsWith("COMMENT ON ROLE")));
});

Deno.test("planUserInside manages only the grants dbtether makes", async (t) => {
  const spec = { username: "mig", marker: { namespace: "ns", name: "mig" }, databases: [] };
  const g = (name: string, privilege: string, o: { grantor: string; owner: string }) => ({
    schema: "public",
    name,
    privilege,
    ...o,
  });
  const db = (grants: { tables: string[]; privileges: TablePrivilege[] }[] = []) => ({
    name: "shop",
    level: "readwrite" as const,
    additionalGrants: grants,
  });
  const plan = (d: ReturnType<typeof db>, directGrants: DirectGrant[], owned: string[] = []) =>
    planUserInside(spec, d, {
      defaultAcls: [],
      directGrants,
      owned: owned.map((name) => ({ schema: "public", name })),
    }).map((s) => s.sql);
  await t.step("the owner's own entries are never revoked", () => {
    const own = ["SELECT", "TRUNCATE", "INSERT"].map((p) =>
      g("orders", p, { grantor: "mig", owner: "mig" })
    );
    assertEquals(plan(db(), own, ["orders"]), []);
  });
  await t.step("grants made by someone other than the owner are never revoked", () => {
    assertEquals(plan(db(), [g("t", "SELECT", { grantor: "bob", owner: "shop_owner" })]), []);
  });
  await t.step("a grant recorded by the owner and no longer declared is revoked", () => {
    assertEquals(
      plan(db(), [g("t", "DELETE", { grantor: "shop_owner", owner: "shop_owner" })]),
      [
        'REVOKE DELETE ON TABLE "public"."t" FROM "mig"',
      ],
    );
  });
  await t.step("declared grants are made once; none on tables the user owns", () => {
    const d = db([{ tables: ["t", "orders"], privileges: ["SELECT", "TRUNCATE"] }]);
    assertEquals(plan(d, [], ["orders"]), [
      'GRANT SELECT, TRUNCATE ON TABLE "public"."t" TO "mig"',
    ]);
    const have = ["SELECT", "TRUNCATE"].map((p) =>
      g("t", p, { grantor: "shop_owner", owner: "shop_owner" })
    );
    assertEquals(plan(d, have, ["orders"]), []);
  });
  await t.step("a grant by another grantor does not count as dbtether's", () => {
    const d = db([{ tables: ["t"], privileges: ["SELECT"] }]);
    assertEquals(plan(d, [g("t", "SELECT", { grantor: "bob", owner: "shop_owner" })]), [
      'GRANT SELECT ON TABLE "public"."t" TO "mig"',
    ]);
  });
});

Deno.test("planDatabaseInside gives the groups defaults for what the admin creates later", async (t) => {
  const spec = {
    database: "app",
    marker: { namespace: "ns", name: "app" },
    revokePublicConnect: true,
  };
  const inside = (creators: string[], defaultAcls: DefaultAcl[] = []): DatabaseSnapshot => ({
    schemas: [],
    relations: [],
    functions: [],
    defaultAcls,
    extensions: new Set(),
    creators,
  });
  const defaults = (forRole: string) => [
    `ALTER DEFAULT PRIVILEGES FOR ROLE "${forRole}" GRANT USAGE ON SCHEMAS TO "app_readonly"`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE "${forRole}" GRANT SELECT ON TABLES TO "app_readonly"`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE "${forRole}" GRANT INSERT, UPDATE, DELETE ON TABLES TO "app_readwrite"`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE "${forRole}" GRANT SELECT ON SEQUENCES TO "app_readonly"`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE "${forRole}" GRANT USAGE ON SEQUENCES TO "app_readwrite"`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE "${forRole}" GRANT EXECUTE ON FUNCTIONS TO "app_readonly"`,
  ];
  const acls = (forRole: string): DefaultAcl[] =>
    [
      ["n", "app_readonly", "USAGE"],
      ["r", "app_readonly", "SELECT"],
      ["r", "app_readwrite", "INSERT"],
      ["r", "app_readwrite", "UPDATE"],
      ["r", "app_readwrite", "DELETE"],
      ["S", "app_readonly", "SELECT"],
      ["S", "app_readwrite", "USAGE"],
      ["f", "app_readonly", "EXECUTE"],
    ].map(([objects, grantee, privilege]) => ({
      forRole,
      objects: objects!,
      grantee: grantee!,
      privilege: privilege!,
    }));

  await t.step("for the owner role, the admin and other roles the admin acts for", () => {
    const sql = planDatabaseInside(spec, inside(["admin", "migrator"])).map((s) => s.sql);
    assertEquals(sql, [
      ...defaults("app_owner"),
      ...defaults("admin"),
      ...defaults("migrator"),
    ]);
  });

  await t.step("the owner role listed as a creator is not planned twice", () => {
    const sql = planDatabaseInside(spec, inside(["app_owner"])).map((s) => s.sql);
    assertEquals(sql, defaults("app_owner"));
  });

  await t.step("nothing when every default is there", () => {
    const have = [...acls("app_owner"), ...acls("admin")];
    assertEquals(planDatabaseInside(spec, inside(["admin"], have)), []);
  });

  await t.step("EXECUTE on existing functions, in one statement for the schemas missing it", () => {
    const functions = [
      { schema: "public", missing: true, blocked: false },
      { schema: "ok", missing: false, blocked: false },
      { schema: "ext", missing: true, blocked: true },
      { schema: "a\nb", missing: true, blocked: false },
    ];
    const snap = { ...inside([], acls("app_owner")), functions };
    assertEquals(planDatabaseInside(spec, snap).map((s) => s.sql), [
      'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA "public", "a\nb" TO "app_readonly"',
    ]);
  });
});

Deno.test("planDatabaseInside quotes catalog names with control characters", () => {
  const spec = {
    database: "app",
    marker: { namespace: "ns", name: "app" },
    revokePublicConnect: true,
  };
  const rel = (name: string) => ({
    schema: "public",
    name,
    kind: "r",
    readonlyOk: false,
    readwriteOk: true,
  });
  const sql = planDatabaseInside(spec, {
    schemas: [],
    relations: [rel("a\nb"), rel("plain"), rel('q"t\u001b')],
    functions: [],
    defaultAcls: [],
    extensions: new Set(),
    creators: [],
  }).map((s) => s.sql);
  assert(
    sql.includes(
      'GRANT SELECT ON TABLE "public"."a\nb", "public"."plain", "public"."q""t\u001b" TO "app_readonly"',
    ),
    sql.join("\n"),
  );
});

Deno.test("planDatabaseInside: PUBLIC's CREATE on public is revoked and D_admin granted its own", () => {
  // 13/14 (and adopted databases): D_admin's CREATE came through PUBLIC only.
  const spec = {
    database: "app",
    marker: { namespace: "ns", name: "app" },
    revokePublicConnect: true,
  };
  const snap = (publicCreate: boolean) => ({
    schemas: [{
      name: "public",
      readonlyUsage: true,
      adminCreate: true,
      ownerCreate: !publicCreate,
      publicCreate,
    }],
    relations: [],
    functions: [],
    defaultAcls: [],
    extensions: new Set<string>(),
    creators: [],
  });
  const sql = planDatabaseInside(spec, snap(true)).map((s) => s.sql)
    .filter((s) => s.includes("ON SCHEMA "));
  assertEquals(sql, [
    'REVOKE CREATE ON SCHEMA "public" FROM PUBLIC',
    'GRANT CREATE ON SCHEMA "public" TO "app_admin"',
    'GRANT CREATE ON SCHEMA "public" TO "app_owner"',
  ]);
  assertEquals(
    planDatabaseInside(spec, snap(false)).map((s) => s.sql).filter((s) => s.includes("ON SCHEMA ")),
    [],
  );
});

Deno.test("planDatabaseServer: creation options and the connection limit", async (t) => {
  const marker = { namespace: "ns", name: "app" };
  const spec = (options: DatabaseSpec["options"]): DatabaseSpec => ({
    database: "app",
    marker,
    revokePublicConnect: true,
    ...(options ? { options } : {}),
  });
  const create = (options: DatabaseSpec["options"], versionNum = 150000) =>
    planDatabaseServer(spec(options), { ...emptySnapshot(), versionNum })
      .map((s) => s.sql).find((q) => q.startsWith("CREATE DATABASE"));
  await t.step("none: the plain statement", () => {
    assertEquals(create(undefined), 'CREATE DATABASE "app" OWNER "app_owner"');
  });
  await t.step("an encoding or locale means template0; every value a literal", () => {
    assertEquals(
      create({ encoding: "LATIN1", locale: "C", connectionLimit: 5 }),
      `CREATE DATABASE "app" OWNER "app_owner" TEMPLATE "template0" ENCODING 'LATIN1' ` +
        `LOCALE 'C' CONNECTION LIMIT 5`,
    );
    assertEquals(
      create({ template: "template1", lcCollate: "C", lcCtype: "x'y" }),
      `CREATE DATABASE "app" OWNER "app_owner" TEMPLATE "template1" LC_COLLATE 'C' ` +
        `LC_CTYPE 'x''y'`,
    );
  });
  await t.step("ICU from 15, builtin from 17, libc omitted before 15", () => {
    assertEquals(
      create({ localeProvider: "icu", icuLocale: "und" }),
      `CREATE DATABASE "app" OWNER "app_owner" TEMPLATE "template0" LOCALE_PROVIDER 'icu' ` +
        `ICU_LOCALE 'und'`,
    );
    for (
      const [o, v] of [[{ localeProvider: "icu" as const }, 140000], [
        { localeProvider: "builtin" as const },
        160000,
      ]] as const
    ) {
      let reason = "";
      try {
        create(o, v);
      } catch (e) {
        reason = (e as { reason?: string }).reason ?? "";
      }
      assertEquals(reason, "DatabaseOptionUnsupported");
    }
    assertEquals(
      create({ localeProvider: "libc" }, 130000),
      'CREATE DATABASE "app" OWNER "app_owner"',
    );
  });
  await t.step("an existing database: only the connection limit is kept in line", () => {
    const snap = (limit: number): ServerSnapshot => ({
      ...emptySnapshot(),
      roles: new Map(
        Object.values(databaseRoles("app")).map((r) => [
          r,
          role(r, {
            comment: formatMarker({ ...marker, kind: "Database" }),
          }),
        ]),
      ),
      adminInherits: new Set([databaseRoles("app").owner]),
      database: dbRow({
        owner: "app_owner",
        comment: formatMarker(marker),
        connect: ["app_readonly"],
        connectionLimit: limit,
      }),
    });
    const sql = (limit: number, o: DatabaseSpec["options"]) =>
      planDatabaseServer(spec(o), snap(limit)).map((s) => s.sql).filter((q) =>
        q.startsWith("ALTER DATABASE") || q.startsWith("CREATE DATABASE")
      );
    assertEquals(sql(-1, { connectionLimit: 7, encoding: "LATIN1" }), [
      'ALTER DATABASE "app" WITH CONNECTION LIMIT 7',
    ]);
    assertEquals(sql(7, { connectionLimit: 7 }), []);
    assertEquals(sql(3, undefined), [], "unset: left as it is");
  });
});
