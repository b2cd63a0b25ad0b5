/**
 * Issue 7 item 2: `dbtether.io/adopt` never takes over a role that reaches beyond the adopting
 * namespace, and adoption at all needs the DBCluster's consent. A hostile tenant (namespaced
 * resources and annotations only, in its own namespace) names other tenants' roles, a
 * Database's owner and group roles, the admin, and pre-existing roles with powerful attributes
 * or memberships; the real program refuses each with its own reason, and no role's password,
 * attributes, memberships or comment change. The allowed case (a granted namespace, a plain
 * unmarked login role) works.
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { readyOf, runsAs, secretData, waitReason, waitRefused } from "./helpers/fixtures.ts";
import { adoptionGrant, resource, rolesSnapshot } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Roles that exist before dbtether, made by the platform team (as the bootstrap superuser). */
const PRE_EXISTING = (major: number) => `
CREATE ROLE legacy_other LOGIN PASSWORD 'legacy-other-pw';
CREATE ROLE creator LOGIN CREATEROLE PASSWORD 'creator-pw';
CREATE ROLE maker LOGIN CREATEDB PASSWORD 'maker-pw';
CREATE ROLE bypasser LOGIN BYPASSRLS PASSWORD 'bypasser-pw';
CREATE ROLE replicator LOGIN REPLICATION PASSWORD 'replicator-pw';
CREATE ROLE rds_superuser NOLOGIN;
CREATE ROLE cloud_member LOGIN PASSWORD 'cloud-pw';
GRANT rds_superuser TO cloud_member;
CREATE ROLE azure_pg_admin NOLOGIN;
CREATE ROLE azure_member LOGIN PASSWORD 'azure-pw';
GRANT azure_pg_admin TO azure_member;
CREATE ROLE all_reader LOGIN PASSWORD 'reader-pw';
GRANT ${major >= 14 ? "pg_read_all_data" : "pg_read_server_files"} TO all_reader;
CREATE ROLE signaller LOGIN PASSWORD 'signal-pw';
GRANT pg_signal_backend TO signaller;
CREATE ROLE file_reader LOGIN PASSWORD 'files-pw';
GRANT pg_read_server_files TO file_reader;
CREATE ROLE mid NOLOGIN;
GRANT creator TO mid;
CREATE ROLE nested LOGIN PASSWORD 'nested-pw';
GRANT mid TO nested;
`;

Deno.test({
  name: "Adoption of roles: refused beyond the namespace, allowed only with consent",
  ...opts,
}, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  const victim = await env.namespace("tenant-a");
  const granted = await env.namespace("tenant-b");
  const denied = await env.namespace("tenant-c");
  await env.kube.apply(env.clusterManifest("main", { extraSpec: adoptionGrant([granted]) }));
  await env.waitPhase("dbcluster", "main", "Connected");
  const admin = env.pg.admin.user;

  // Tenant A: a database with data and a user; B and C: a database each, to point users at.
  const db = (name: string, ns: string) =>
    resource("Database", {
      name,
      ns,
      spec: "clusterRef: { name: main }\ndeletionPolicy: Delete\n",
    });
  await env.kube.apply(db("shop", victim));
  await env.kube.apply(db("bdb", granted));
  await env.kube.apply(db("cdb", denied));
  await env.kube.apply(resource("DatabaseUser", {
    name: "alice",
    ns: victim,
    spec: "databaseRef: { name: shop }\nprivileges: readwrite\n",
  }));
  for (const [n, ns] of [["shop", victim], ["bdb", granted], ["cdb", denied]]) {
    await env.waitPhase("database", n!, "Ready", { namespace: ns! });
  }
  await env.waitPhase("databaseuser", "alice", "Ready", { namespace: victim });
  const aliceSecret = (await secretData(env, { namespace: victim, name: "alice-credentials" }))!;
  const alice = { user: "alice", password: aliceSecret.password!, database: "shop" };
  await env.pg.superSql(
    "SET ROLE shop_owner; CREATE TABLE orders (id int); INSERT INTO orders VALUES (1); RESET ROLE;",
    { database: "shop" },
  );
  // 13 has no pg_read_all_data; pg_read_server_files is as much a reason to refuse.
  await env.pg.superSql(PRE_EXISTING(env.pg.major));
  // The role the allowed case adopts was made with the master user (the admin), as on a cloud:
  // from 16 a CREATEROLE admin may alter and grant only roles it holds WITH ADMIN OPTION.
  const legacy = await env.pg.psql("CREATE ROLE legacy_app LOGIN PASSWORD 'legacy-app-pw'");
  assertEquals(legacy.code, 0, legacy.stderr);
  // Roles that reach tenant A's data: a member of its readonly group, and a role with direct
  // privileges there (both made by hand by the platform team, not marked by dbtether).
  await env.pg.superSql(`
    CREATE ROLE shop_holder LOGIN PASSWORD 'holder-pw';
    GRANT shop_readonly TO shop_holder;
    CREATE ROLE shop_reporter LOGIN PASSWORD 'reporter-pw';
    GRANT CONNECT ON DATABASE shop TO shop_reporter;
    CREATE ROLE admin_member LOGIN PASSWORD 'admin-member-pw';
    GRANT "${admin}" TO admin_member;
  `);
  await env.pg.superSql("GRANT SELECT ON orders TO shop_reporter", { database: "shop" });
  const before = await rolesSnapshot(env.pg);

  const attacker = (name: string, ns: string, username: string) =>
    resource("DatabaseUser", {
      name,
      ns,
      annotations: { "dbtether.io/adopt": "true" },
      spec: `username: ${JSON.stringify(username)}\ndatabaseRef: { name: ${
        ns === granted ? "bdb" : "cdb"
      } }\nprivileges: admin\n`,
    });
  // [resource name, namespace, role named, expected reason]
  const cases: [string, string, string, string][] = [
    ["steal-alice", granted, "alice", "RoleClaimedByOther"],
    ["steal-owner", granted, "shop_owner", "RoleIsDatabaseRole"],
    ["steal-group", granted, "shop_readonly", "RoleIsDatabaseRole"],
    ["steal-admin", granted, admin, "InvalidName"],
    ["steal-creator", granted, "creator", "RoleIsPrivileged"],
    ["steal-maker", granted, "maker", "RoleIsPrivileged"],
    ["steal-bypasser", granted, "bypasser", "RoleIsPrivileged"],
    ["steal-replicator", granted, "replicator", "RoleIsPrivileged"],
    ["steal-cloud", granted, "cloud_member", "RoleInheritsPrivileges"],
    ["steal-azure", granted, "azure_member", "RoleInheritsPrivileges"],
    ["steal-reader", granted, "all_reader", "RoleInheritsPrivileges"],
    ["steal-signaller", granted, "signaller", "RoleInheritsPrivileges"],
    ["steal-files", granted, "file_reader", "RoleInheritsPrivileges"],
    ["steal-nested", granted, "nested", "RoleInheritsPrivileges"],
    ["steal-admin-member", granted, "admin_member", "RoleInheritsPrivileges"],
    ["steal-holder", granted, "shop_holder", "RoleHasForeignAccess"],
    ["steal-reporter", granted, "shop_reporter", "RoleHasForeignAccess"],
    ["no-consent", denied, "legacy_other", "AdoptionNotAllowed"],
    ["no-consent-alice", denied, "alice", "RoleClaimedByOther"],
  ];

  await t.step("every refused adoption says why, in status and in an Event", async () => {
    for (const [name, ns, role] of cases) await env.kube.apply(attacker(name, ns, role));
    for (const [name, ns, role, reason] of cases) {
      const u = await waitRefused(env, { kind: "databaseuser", name, namespace: ns, reason });
      assert(readyOf(u)!.message.includes(JSON.stringify(role)), readyOf(u)!.message);
      assertEquals(
        await secretData(env, { namespace: ns, name: `${name}-credentials` }),
        undefined,
        name,
      );
    }
    const consent = await env.getJson<{ status?: { message?: string } }>(
      "databaseuser",
      "no-consent",
      denied,
    );
    assert(/spec\.adoption\.allowedNamespaces/.test(consent!.status!.message!));
    const events = (await env.kube.kubectl([
      "get",
      "events",
      "-n",
      granted,
      "--field-selector",
      "involvedObject.name=steal-creator,type=Warning",
    ], { check: true })).stdout;
    assert(/RoleIsPrivileged/.test(events), events);
  });

  await t.step("no role changed: passwords, attributes, memberships, comments", async () => {
    assertEquals(await rolesSnapshot(env.pg), before);
    assert(
      await runsAs(env.pg, alice, { sql: "SELECT * FROM orders" }),
      "alice still logs in and reads",
    );
    const logins: [string, string][] = [["legacy_other", "legacy-other-pw"], [
      "creator",
      "creator-pw",
    ]];
    for (const [user, password] of logins) {
      assert(await runsAs(env.pg, { user, password, database: "postgres" }), user);
    }
    assert(
      await runsAs(env.pg, { user: "shop_holder", password: "holder-pw", database: "shop" }, {
        sql: "SELECT * FROM orders",
      }),
      "the platform's own member of tenant A's group keeps its access",
    );
  });

  await t.step("deleting the refused users (deletionPolicy Delete) drops no role", async () => {
    for (const [name, ns] of cases) {
      await env.kube.kubectl([
        "delete",
        "databaseuser",
        name,
        "-n",
        ns,
        "--wait=true",
        "--timeout=60s",
      ], { check: true });
    }
    assertEquals(await rolesSnapshot(env.pg), before);
    assert(
      await runsAs(env.pg, alice, { sql: "SELECT * FROM orders" }),
      "alice still logs in and reads",
    );
  });

  await t.step("without the annotation an unmarked role is refused, not taken", async () => {
    await env.kube.apply(resource("DatabaseUser", {
      name: "legacy",
      ns: granted,
      spec: "username: legacy_app\ndatabaseRef: { name: bdb }\n",
    }));
    await waitReason(env, {
      kind: "databaseuser",
      name: "legacy",
      namespace: granted,
      reason: "RoleExistsUnmanaged",
    });
    assert(
      await runsAs(env.pg, { user: "legacy_app", password: "legacy-app-pw", database: "postgres" }),
    );
  });

  await t.step("the allowed case: a plain unmarked role, in a granted namespace", async () => {
    await env.kube.kubectl([
      "annotate",
      "databaseuser",
      "legacy",
      "-n",
      granted,
      "dbtether.io/adopt=true",
    ], { check: true });
    await env.waitPhase("databaseuser", "legacy", "Ready", { namespace: granted });
    const s = (await secretData(env, { namespace: granted, name: "legacy-credentials" }))!;
    assertEquals(s.username, "legacy_app");
    assert(await runsAs(env.pg, { user: "legacy_app", password: s.password!, database: "bdb" }));
    assertEquals(
      (await env.pg.superSql(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = 'legacy_app'",
      )).trim(),
      `dbtether:DatabaseUser/${granted}/legacy`,
    );
  });

  await t.step(
    "a Database claiming existing owner and group roles obeys the same rules",
    async () => {
      await env.pg.superSql(`
      CREATE ROLE sneaky_owner NOLOGIN CREATEROLE;
      CREATE ROLE quiet_readonly NOLOGIN;
      GRANT ${env.pg.major >= 14 ? "pg_write_all_data" : "pg_write_server_files"} TO quiet_readonly;
    `);
      const snap = await rolesSnapshot(env.pg);
      const force = { "dbtether.io/force-adopt": "true" };
      const spec = (database: string) => `clusterRef: { name: main }\ndatabaseName: ${database}\n`;
      await env.kube.apply(
        resource("Database", {
          name: "sneaky",
          ns: granted,
          annotations: force,
          spec: spec("sneaky"),
        }),
      );
      await env.kube.apply(
        resource("Database", {
          name: "quiet",
          ns: granted,
          annotations: force,
          spec: spec("quiet"),
        }),
      );
      await env.kube.apply(
        resource("Database", { name: "plain", ns: granted, spec: spec("sneaky") }),
      );
      for (
        const [name, reason] of [
          ["sneaky", "RoleIsPrivileged"],
          ["quiet", "RoleInheritsPrivileges"],
          ["plain", "RoleExistsUnmanaged"],
        ] as const
      ) await waitReason(env, { kind: "database", name, namespace: granted, reason });
      assertEquals(await rolesSnapshot(env.pg), snap);
      assertEquals(
        (await env.pg.superSql(
          "SELECT count(*) FROM pg_database WHERE datname IN ('sneaky', 'quiet')",
        )).trim(),
        "0",
      );
    },
  );

  await t.step("the admin password never appears in the program's logs", () => {
    assert(!env.program!.logs().includes(env.pg.admin.password));
  });
});

Deno.test({
  name: "Adoption of a role the admin does not hold WITH ADMIN OPTION: the GRANT to ask for (16+)",
  ...opts,
}, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  const ns = await env.namespace("tenant-d");
  await env.kube.apply(env.clusterManifest("main", { extraSpec: adoptionGrant([ns]) }));
  await env.waitPhase("dbcluster", "main", "Connected");
  await env.kube.apply(resource("Database", {
    name: "app",
    ns,
    spec: "clusterRef: { name: main }\ndeletionPolicy: Delete\n",
  }));
  await env.waitPhase("database", "app", "Ready", { namespace: ns });
  // Made by the platform team as the bootstrap superuser, not by the admin: on 16+ the admin
  // holds no membership in it at all.
  await env.pg.superSql("CREATE ROLE su_made LOGIN PASSWORD 'su-made-pw'");
  const before = await rolesSnapshot(env.pg);
  await env.kube.apply(resource("DatabaseUser", {
    name: "legacy",
    ns,
    annotations: { "dbtether.io/adopt": "true" },
    spec: "username: su_made\ndatabaseRef: { name: app }\nprivileges: readonly\n",
  }));
  const admin = env.pg.admin.user;

  if (env.pg.major >= 16) {
    let grant = "";
    await t.step("refused with AdminOptionMissing, naming the GRANT; nothing changed", async () => {
      const u = await waitReason(env, {
        kind: "databaseuser",
        name: "legacy",
        namespace: ns,
        reason: "AdminOptionMissing",
      });
      const msg = readyOf(u)!.message;
      assertMatch(msg, /^Cannot adopt role "su_made": from PostgreSQL 16 the admin role /);
      assert(
        msg.endsWith(`GRANT "su_made" TO "${admin}" WITH ADMIN TRUE, INHERIT FALSE, SET FALSE`),
        msg,
      );
      grant = msg.slice(msg.lastIndexOf("GRANT "));
      assertEquals(await rolesSnapshot(env.pg), before);
      assertEquals(await secretData(env, { namespace: ns, name: "legacy-credentials" }), undefined);
      assert(
        await runsAs(env.pg, { user: "su_made", password: "su-made-pw", database: "postgres" }),
      );
      const events = (await env.kube.kubectl([
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "involvedObject.name=legacy,type=Warning",
      ], { check: true })).stdout;
      assert(/AdminOptionMissing/.test(events), events);
    });
    await t.step("the platform team runs that GRANT: adopted, the spec unchanged", async () => {
      await env.pg.superSql(grant);
      await env.waitPhase("databaseuser", "legacy", "Ready", {
        namespace: ns,
        timeoutMs: budget("ready"),
      });
    });
  } else {
    // Up to 15 a CREATEROLE admin may change any non-superuser role.
    await env.waitPhase("databaseuser", "legacy", "Ready", { namespace: ns });
  }

  await t.step(
    "the adopted role logs in with its new password and reads, as readonly",
    async () => {
      const s = (await secretData(env, { namespace: ns, name: "legacy-credentials" }))!;
      assertEquals(s.username, "su_made");
      assert(await runsAs(env.pg, { user: "su_made", password: s.password!, database: "app" }));
      assert(
        !(await runsAs(env.pg, { user: "su_made", password: "su-made-pw", database: "app" })),
        "the old password no longer works",
      );
      // The admin can manage the role but does not get its privileges (INHERIT FALSE).
      const uses = await env.pg.superSql(`SELECT pg_has_role('${admin}', 'su_made', 'USAGE')`);
      assertEquals(uses.trim(), "f");
    },
  );
});
