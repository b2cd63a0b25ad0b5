/**
 * Issue 7 item 3: an existing database is never taken over silently, force-adopt needs the
 * DBCluster's consent, a claim never moves to another namespace, and deleting a Database never
 * drops a database it does not claim. A hostile tenant applies Databases and PostgresDatabases
 * (namespaced, with any annotation) against a pre-existing application database and another
 * tenant's database; the application keeps logging in and reading its table, the server log
 * shows no mutating statement, and the victims survive deletion with deletionPolicy Delete.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { readyOf, runsAs, secretData, waitReason, waitRefused } from "./helpers/fixtures.ts";
import { adoptionGrant, logMark, mutatingSince, resource, warnings } from "./helpers/tenant.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const FORCE = { "dbtether.io/force-adopt": "true" };
const APP = { user: "app_legacy", password: "app-legacy-pw", database: "legacy_db" };

const database = (
  name: string,
  ns: string,
  o: { databaseName: string; policy?: string; annotations?: Record<string, string> },
) =>
  resource("Database", {
    name,
    ns,
    ...(o.annotations ? { annotations: o.annotations } : {}),
    spec: `clusterRef: { name: main }\ndatabaseName: ${o.databaseName}\ndeletionPolicy: ${
      o.policy ?? "Delete"
    }\n`,
  });

async function comment(env: TestEnv, database: string): Promise<string> {
  return (await env.pg.superSql(
    `SELECT coalesce(shobj_description(oid, 'pg_database'), 'none') FROM pg_database
     WHERE datname = '${database}'`,
  )).trim();
}

async function remove(env: TestEnv, kind: string, name: string, ns: string) {
  await env.kube.kubectl(["delete", kind, name, "-n", ns, "--wait=true", "--timeout=60s"], {
    check: true,
  });
}

Deno.test({
  name: "Adoption of databases: nothing existing is taken or dropped without consent",
  ...opts,
}, async (t) => {
  await using env = await startEnv({
    pg: true,
    programArgs: ["--postgresdatabase-cluster", "main"],
  });
  const victim = await env.namespace("tenant-a");
  const granted = await env.namespace("tenant-b");
  const denied = await env.namespace("tenant-c");
  await env.kube.apply(env.clusterManifest("main", { extraSpec: adoptionGrant([granted]) }));
  await env.startProgram();
  await env.waitPhase("dbcluster", "main", "Connected");

  // An application that was there before dbtether: its own role, database and data. The
  // platform's admin role is a member of its role, as when the master user made it.
  await env.pg.superSql(`
    CREATE ROLE app_legacy LOGIN PASSWORD 'app-legacy-pw';
    CREATE DATABASE legacy_db OWNER app_legacy;
    GRANT app_legacy TO "${env.pg.admin.user}";
  `);
  assert(await runsAs(env.pg, APP, { sql: "CREATE TABLE t (id int); INSERT INTO t VALUES (42)" }));
  // Tenant A's database, with a user and data.
  await env.kube.apply(database("a-db", victim, { databaseName: "a_db", policy: "Retain" }));
  await env.kube.apply(resource("DatabaseUser", {
    name: "alice",
    ns: victim,
    spec: "databaseRef: { name: a-db }\nprivileges: readwrite\n",
  }));
  await env.waitPhase("databaseuser", "alice", "Ready", { namespace: victim });
  await env.pg.superSql(
    "SET ROLE a_db_owner; CREATE TABLE orders (id int); INSERT INTO orders VALUES (7); RESET ROLE",
    { database: "a_db" },
  );
  const a = (await secretData(env, { namespace: victim, name: "alice-credentials" }))!;
  const alice = { user: "alice", password: a.password!, database: "a_db" };
  const victimsIntact = async () => {
    assert(await runsAs(env.pg, APP, { sql: "SELECT * FROM t" }), "the application still reads t");
    assert(
      await runsAs(env.pg, alice, { sql: "SELECT * FROM orders" }),
      "alice still reads orders",
    );
    assertEquals(await comment(env, "legacy_db"), "none");
    assertEquals(await comment(env, "a_db"), `dbtether:${victim}/a-db`);
  };
  await new Promise((r) => setTimeout(r, 1000));
  const mark = await logMark(env.pg);

  await t.step("an existing unmarked database is reported, not adopted", async () => {
    await env.kube.apply(database("grab", denied, { databaseName: "legacy_db" }));
    const d = await waitRefused(env, {
      kind: "database",
      name: "grab",
      namespace: denied,
      reason: "DatabaseExistsUnmanaged",
    });
    assert(/dbtether\.io\/force-adopt/.test(readyOf(d)!.message), readyOf(d)!.message);
    await waitFor(
      "the Warning Event",
      async () =>
        (await warnings(env, "grab", denied)).some((w) => w.startsWith("DatabaseExistsUnmanaged")),
    );
  });

  await t.step("force-adopt without the DBCluster's consent is refused", async () => {
    await env.kube.apply(
      database("grab", denied, { databaseName: "legacy_db", annotations: FORCE }),
    );
    const d = await waitReason(env, {
      kind: "database",
      name: "grab",
      namespace: denied,
      reason: "AdoptionNotAllowed",
    });
    assert(/spec\.adoption\.allowedNamespaces/.test(readyOf(d)!.message), readyOf(d)!.message);
  });

  await t.step("another namespace's database is refused, with or without consent", async () => {
    await env.kube.apply(database("steal-c", denied, { databaseName: "a_db", annotations: FORCE }));
    await env.kube.apply(
      database("steal-b", granted, { databaseName: "a_db", annotations: FORCE }),
    );
    for (const [name, ns] of [["steal-c", denied], ["steal-b", granted]]) {
      const d = await waitReason(env, {
        kind: "database",
        name: name!,
        namespace: ns!,
        reason: "DatabaseClaimedByOther",
      });
      assert(readyOf(d)!.message.includes(`dbtether:${victim}/a-db`), readyOf(d)!.message);
    }
  });

  await t.step("a PostgresDatabase obeys the same rules", async () => {
    const pgdb = (name: string, annotations?: Record<string, string>) =>
      resource("PostgresDatabase", {
        name,
        ns: denied,
        ...(annotations ? { annotations } : {}),
        spec: `name: legacy_db\ntargetSecret: { name: ${name}-secret }\n`,
      });
    await env.kube.apply(pgdb("pg-grab"));
    await env.kube.apply(pgdb("pg-adopt", { "dbtether.io/adopt": "true" }));
    // Tenant A's login role, from a namespace with consent: refused before any database exists.
    await env.kube.apply(resource("PostgresDatabase", {
      name: "pg-alice",
      ns: granted,
      annotations: { "dbtether.io/adopt": "true" },
      spec: "name: alice\ntargetSecret: { name: pg-alice-secret }\n",
    }));
    await waitReason(env, {
      kind: "pgdb",
      name: "pg-alice",
      namespace: granted,
      reason: "RoleClaimedByOther",
    });
    assertEquals(
      (await env.pg.superSql("SELECT count(*) FROM pg_database WHERE datname = 'alice'")).trim(),
      "0",
    );
    for (
      const [name, reason] of [
        ["pg-grab", "DatabaseExistsUnmanaged"],
        ["pg-adopt", "AdoptionNotAllowed"],
      ] as const
    ) await waitReason(env, { kind: "pgdb", name, namespace: denied, reason });
  });

  await t.step("no mutating statement reached the server; the victims are intact", async () => {
    await new Promise((r) => setTimeout(r, 1500));
    assertEquals(await mutatingSince(env, mark), []);
    await victimsIntact();
  });

  await t.step("deleting the refused resources (deletionPolicy Delete) drops nothing", async () => {
    await remove(env, "database", "grab", denied);
    await remove(env, "database", "steal-c", denied);
    await remove(env, "database", "steal-b", granted);
    await remove(env, "pgdb", "pg-grab", denied);
    await remove(env, "pgdb", "pg-adopt", denied);
    await remove(env, "pgdb", "pg-alice", granted);
    assert(
      (await warnings(env, "steal-b", granted)).some((w) => w.startsWith("NotDropped")),
      "the Event says why nothing was dropped",
    );
    assertEquals(await mutatingSince(env, mark), []);
    await victimsIntact();
  });

  await t.step("with consent, force-adopt takes over an unmanaged database", async () => {
    await env.kube.apply(
      database("adopted", granted, { databaseName: "legacy_db", annotations: FORCE }),
    );
    await env.waitPhase("database", "adopted", "Ready", { namespace: granted });
    assertEquals(await comment(env, "legacy_db"), `dbtether:${granted}/adopted`);
    assertEquals(
      (await env.pg.superSql("SELECT id FROM t", { database: "legacy_db" })).trim(),
      "42",
      "the data stays",
    );
  });

  await t.step("with consent, a PostgresDatabase adopts its database and role", async () => {
    // Made with the master user (the admin), as on a cloud: from 16 a CREATEROLE admin may
    // alter and grant only roles it holds WITH ADMIN OPTION.
    const made = await env.pg.psql(`
      CREATE ROLE legacy_pgdb LOGIN PASSWORD 'legacy-pgdb-pw';
      GRANT legacy_pgdb TO "${env.pg.admin.user}";
      CREATE DATABASE legacy_pgdb OWNER legacy_pgdb;
    `);
    assertEquals(made.code, 0, made.stderr);
    await env.kube.apply(resource("PostgresDatabase", {
      name: "pg-legacy",
      ns: granted,
      annotations: { "dbtether.io/adopt": "true" },
      spec: "name: legacy_pgdb\ntargetSecret: { name: pg-legacy-secret }\n",
    }));
    await env.waitPhase("pgdb", "pg-legacy", "Ready", { namespace: granted });
    const s = (await secretData(env, { namespace: granted, name: "pg-legacy-secret" }))!;
    assert(
      await runsAs(env.pg, {
        user: "legacy_pgdb",
        password: s.PGPASSWORD!,
        database: "legacy_pgdb",
      }),
    );
    assertEquals(
      await comment(env, "legacy_pgdb"),
      `dbtether:PostgresDatabase/${granted}/pg-legacy`,
    );
  });

  await t.step("deleting a Database that lost its claim never drops the database", async () => {
    await env.kube.apply(database("first", granted, { databaseName: "moved_db" }));
    await env.waitPhase("database", "first", "Ready", { namespace: granted });
    await env.kube.apply(
      database("second", granted, { databaseName: "moved_db", annotations: FORCE }),
    );
    await env.waitPhase("database", "second", "Ready", { namespace: granted });
    await remove(env, "database", "first", granted);
    assertEquals(await comment(env, "moved_db"), `dbtether:${granted}/second`);
    assert((await warnings(env, "first", granted)).some((w) => w.startsWith("NotDropped")));
  });

  await t.step("a database our own crash left unmarked is still ours", async () => {
    // CREATE DATABASE cannot share a transaction with its COMMENT: this is what a SIGKILL between
    // the two leaves (the owner role and its marker commit together, before the database).
    // The admin made them (dbtether does), so it holds the owner role WITH ADMIN OPTION on 16+.
    const made = await env.pg.psql(`
      CREATE ROLE crashed_owner NOLOGIN;
      COMMENT ON ROLE crashed_owner IS 'dbtether:Database/${granted}/crashed';
      GRANT crashed_owner TO "${env.pg.admin.user}";
      CREATE DATABASE crashed OWNER crashed_owner;
    `);
    assertEquals(made.code, 0, made.stderr);
    await env.kube.apply(database("crashed", granted, { databaseName: "crashed" }));
    await env.waitPhase("database", "crashed", "Ready", { namespace: granted });
    assertEquals(await comment(env, "crashed"), `dbtether:${granted}/crashed`);
  });

  await t.step("the README PostgresDatabase still works on a fresh database", async () => {
    const readme = (await Deno.readTextFile(
      new URL("../examples/postgres_database.yaml", import.meta.url),
    )).split(/^---$/m).find((d) => /kind: PostgresDatabase\b/.test(d))!;
    await env.kube.kubectl(["apply", "-n", denied, "-f", "-"], { stdin: readme, check: true });
    await env.waitPhase("pgdb", "pg-db-test", "Ready", { namespace: denied });
  });
});
