/**
 * "readonly can read tables created later by someone else" (our README's words), through the
 * real `dbtether run`, a real apiserver and a real PostgreSQL (admin not superuser): objects
 * the DBCluster's admin creates later in a managed database (what a platform engineer does with
 * the master user), and objects of an admin-level user, are usable by the groups at once;
 * functions too where the platform team revoked EXECUTE from PUBLIC, and not by another
 * tenant's users; existing ones get their grants back at reconcile; a converged reconcile sends
 * nothing.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { annotate, secretData } from "./helpers/fixtures.ts";
import { resource } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const MUTATING = /statement: (CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|REASSIGN)\b/i;

/** The Database "shop" on DBCluster "main", dropped with its object. */
const SHOP_SPEC = "clusterRef: { name: main }\ndeletionPolicy: Delete\n";

type Login = { user: string; password: string; database: string };

function user(name: string, ns: string, privileges: string): string {
  return resource("DatabaseUser", {
    name,
    ns,
    spec: `databaseRef: { name: shop }\nprivileges: ${privileges}\n`,
  });
}

async function logLines(env: TestEnv, pick: (l: string) => boolean): Promise<string[]> {
  return (await env.pg.readLog()).split("\n").filter(pick);
}

Deno.test({
  name: "objects the admin and admin-level users create later are usable by the groups at once",
  ...opts,
}, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  const ns = await env.namespace("later");
  await env.kube.apply(env.clusterManifest("main"));
  await env.kube.apply(resource("Database", { name: "shop", ns, spec: SHOP_SPEC }));
  for (const [n, p] of [["ro", "readonly"], ["rw", "readwrite"], ["adm", "admin"]]) {
    await env.kube.apply(user(n!, ns, p!));
  }
  // Another tenant: its own namespace, Database and readonly user, nothing else.
  const otherNs = await env.namespace("tenant");
  await env.kube.apply(resource("Database", { name: "depot", ns: otherNs, spec: SHOP_SPEC }));
  await env.kube.apply(resource("DatabaseUser", {
    name: "outsider",
    ns: otherNs,
    spec: "databaseRef: { name: depot }\nprivileges: readonly\n",
  }));
  const creds: Record<string, Login> = {};
  for (const n of ["ro", "rw", "adm"]) {
    await env.waitPhase("databaseuser", n, "Ready", { namespace: ns });
    const d = (await secretData(env, { namespace: ns, name: `${n}-credentials` })) ?? {};
    creds[n] = { user: d.username!, password: d.password!, database: "shop" };
  }
  const as = (who: string, sql: string) => env.pg.psql(sql, creds[who]!);
  const asAdmin = (sql: string) => env.pg.psql(sql, { database: "shop" });
  const denied = async (who: string, sql: string) => {
    const r = await as(who, sql);
    assert(r.code !== 0, `${who} may run ${sql}: ${r.stdout}`);
    assert(/permission denied/.test(r.stderr), r.stderr);
  };
  const allowed = async (who: string, sql: string) => {
    const r = await as(who, sql);
    assertEquals(r.code, 0, `${who}: ${sql}: ${r.stderr}`);
    return r.stdout.trim();
  };

  await t.step("the DBCluster's admin creates a table, a sequence and a schema", async () => {
    const r = await asAdmin(`
      CREATE TABLE admin_items (id serial PRIMARY KEY, name text);
      CREATE SEQUENCE admin_seq;
      CREATE SCHEMA reports;
      CREATE TABLE reports.daily (day date);
      INSERT INTO reports.daily VALUES ('2026-01-01');
    `);
    assertEquals(r.code, 0, r.stderr);
    const owner = await env.pg.superSql(
      "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'admin_items'",
      { database: "shop" },
    );
    assertEquals(owner.trim(), env.pg.admin.user, "the admin owns what it creates");
  });

  await t.step("readonly SELECTs them at once and cannot write", async () => {
    assertEquals(await allowed("ro", "SELECT count(*) FROM admin_items"), "0");
    assertEquals(await allowed("ro", "SELECT day FROM reports.daily"), "2026-01-01");
    await allowed("ro", "SELECT last_value FROM admin_seq");
    await denied("ro", "INSERT INTO admin_items (name) VALUES ('x')");
    await denied("ro", "SELECT nextval('admin_seq')");
  });

  await t.step("readwrite INSERTs (serial included) and uses the sequence", async () => {
    assertEquals(
      await allowed("rw", "INSERT INTO admin_items (name) VALUES ('a') RETURNING id"),
      "1",
    );
    await allowed("rw", "UPDATE admin_items SET name = 'b'");
    assertEquals(await allowed("rw", "SELECT nextval('admin_seq')"), "1");
    await allowed("rw", "INSERT INTO reports.daily VALUES ('2026-01-02')");
    await denied("rw", "CREATE TABLE rw_table (id int)");
    assertEquals(await allowed("ro", "SELECT name FROM admin_items"), "b");
  });

  await t.step(
    "an admin-level user's tables likewise, as the owner role or as itself",
    async () => {
      await allowed("adm", "CREATE TABLE adm_items (id serial PRIMARY KEY, v int)");
      await allowed("adm", "RESET ROLE; CREATE TABLE adm_own (id serial PRIMARY KEY, v int)");
      for (const t of ["adm_items", "adm_own"]) {
        await allowed("rw", `INSERT INTO ${t} (v) VALUES (1)`);
        assertEquals(await allowed("ro", `SELECT v FROM ${t}`), "1");
        await denied("ro", `DELETE FROM ${t}`);
      }
    },
  );

  await t.step(
    "where PUBLIC may not EXECUTE, readonly calls a function created later; another tenant not",
    async () => {
      // As a platform team hardening the server does for the roles that create objects.
      await env.pg.superSql(
        `ALTER DEFAULT PRIVILEGES FOR ROLE "${env.pg.admin.user}" ` +
          "REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
        { database: "shop" },
      );
      const r = await asAdmin(`CREATE FUNCTION reports.day_count() RETURNS bigint
        LANGUAGE sql STABLE AS 'SELECT count(*) FROM reports.daily'`);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(await allowed("ro", "SELECT reports.day_count()"), "2");
      assertEquals(await allowed("rw", "SELECT reports.day_count()"), "2");
      await env.waitPhase("databaseuser", "outsider", "Ready", { namespace: otherNs });
      const d = (await secretData(env, { namespace: otherNs, name: "outsider-credentials" }))!;
      const outsider = await env.pg.psql("SELECT reports.day_count()", {
        user: d.username!,
        password: d.password!,
        database: "shop",
      });
      assert(outsider.code !== 0, `the other tenant calls it: ${outsider.stdout}`);
      assert(/permission denied/.test(outsider.stderr), outsider.stderr);
      // Nothing the other tenant's Database made reaches shop's function.
      const acl = await env.pg.superSql(
        "SELECT string_agg(pg_get_userbyid(a.grantee), ',' ORDER BY pg_get_userbyid(a.grantee)) " +
          "FROM pg_proc p, aclexplode(p.proacl) a WHERE p.proname = 'day_count'",
        { database: "shop" },
      );
      assertEquals(acl.trim(), [env.pg.admin.user, "shop_readonly"].sort().join(","));
    },
  );

  // Only the Database reconcile reads schema privileges of the groups (observeDatabase); the
  // server logs that multi-line query with the column on a line of its own.
  const reconcileMarks = () => logLines(env, (l) => l.includes('AS "adminCreate"'));
  /** Annotates the Database and waits until a reconcile started after that one finished. */
  const reconcileOnce = async (tag: string) => {
    for (const step of ["a", "b"]) {
      const seen = (await reconcileMarks()).length;
      await annotate(
        env,
        { kind: "database", namespace: ns, name: "shop" },
        `test.dbtether.io/poke=${tag}-${step}`,
      );
      await waitFor(
        `Database reconcile ${tag}-${step}`,
        async () => (await reconcileMarks()).length > seen,
        { timeoutMs: budget("react") },
      );
    }
  };

  await t.step("grants missing on existing admin objects come back at reconcile", async () => {
    // As on a database where the admin made tables before dbtether covered its defaults.
    const r = await asAdmin(`REVOKE SELECT ON admin_items FROM shop_readonly;
      REVOKE EXECUTE ON FUNCTION reports.day_count() FROM shop_readonly`);
    assertEquals(r.code, 0, r.stderr);
    await denied("ro", "SELECT * FROM admin_items");
    await denied("ro", "SELECT reports.day_count()");
    await reconcileOnce("regrant");
    await allowed("ro", "SELECT * FROM admin_items");
    assertEquals(await allowed("ro", "SELECT reports.day_count()"), "2");
  });

  await t.step("the reconcile after that sends no mutating statement", async () => {
    const mine = (l: string) => l.includes(`${env.pg.admin.user}@`) && MUTATING.test(l);
    const before = (await logLines(env, mine)).length;
    await reconcileOnce("steady");
    const after = await logLines(env, mine);
    assertEquals(after.slice(before), []);
  });

  await t.step(
    "a function the admin may not execute holds back that schema's catch-up only",
    async () => {
      // GRANT ... ON ALL FUNCTIONS IN SCHEMA would fail on it: not sent, the reconcile goes on.
      await env.pg.superSql(
        `CREATE FUNCTION reports.locked() RETURNS int LANGUAGE sql AS 'SELECT 1';
       REVOKE EXECUTE ON FUNCTION reports.locked() FROM PUBLIC`,
        { database: "shop" },
      );
      const r = await asAdmin("REVOKE EXECUTE ON FUNCTION reports.day_count() FROM shop_readonly");
      assertEquals(r.code, 0, r.stderr);
      const mine = (l: string) => l.includes(`${env.pg.admin.user}@`) && MUTATING.test(l);
      const before = (await logLines(env, mine)).length;
      await reconcileOnce("blocked");
      assertEquals((await logLines(env, mine)).slice(before), []);
      await env.waitPhase("database", "shop", "Ready", { namespace: ns });
      await denied("ro", "SELECT reports.day_count()");
    },
  );
});
