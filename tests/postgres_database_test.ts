/**
 * PostgresDatabase (pg-db-operator compatibility) against a real apiserver and PostgreSQL, with
 * the program configured as pg-db-operator was: the libpq environment and the rotation variable.
 */
import { budget } from "./helpers/timeouts.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { decodeSecretData } from "./helpers/fixtures.ts";
import type { PgServer } from "./helpers/postgres.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const ROTATION_SECONDS = 6;

type Secret = {
  metadata: { uid: string; labels?: Record<string, string>; ownerReferences?: { kind: string }[] };
  data: Record<string, string>;
};
const decode = (s: Secret) => decodeSecretData(s.data);

const README_PGDB =
  (await Deno.readTextFile(new URL("../examples/postgres_database.yaml", import.meta.url)))
    .split(/^---$/m).find((d) => /kind: PostgresDatabase\b/.test(d))!;

async function login(pg: PgServer, user: string, password: string, database: string) {
  return await pg.psql("SELECT current_user", { user, password, database });
}

Deno.test({
  name: "PostgresDatabase: README manifest, Secret, postfix, rotation in place, deletion",
  ...opts,
}, async (t) => {
  await using pgOnly = await startEnv({ pg: true });
  const pg = pgOnly.pg;
  await using env = await startEnv({
    program: true,
    programEnv: {
      PGHOST: pg.host,
      PGPORT: String(pg.port),
      PGUSER: pg.admin.user,
      PGPASSWORD: pg.admin.password,
      PGSSLMODE: "disable",
      PG_DB_OPERATOR_PASSWORD_ROTATION_INTERVAL_SECONDS: String(ROTATION_SECONDS),
    },
  });
  const ns = await env.namespace("pgdb");
  const secret = async () => await env.getJson<Secret>("secret", "secret-pg-db-test", ns);

  await t.step("the README manifest verbatim produces its Secret", async () => {
    await env.kube.kubectl(["apply", "-n", ns, "-f", "-"], { stdin: README_PGDB, check: true });
    await env.waitPhase("pgdb", "pg-db-test", "Ready", { namespace: ns });
    const s = (await secret())!;
    const d = decode(s);
    assertEquals([d.PGDATABASE, d.PGUSER, d.PGHOST, d.PGPORT], [
      "test_db",
      "test_db@servername",
      pg.host,
      String(pg.port),
    ]);
    assert((d.PGPASSWORD ?? "").length >= 16);
    assertEquals(s.metadata.labels?.["app.kubernetes.io/managed-by"], "dbtether");
    assertEquals(s.metadata.ownerReferences?.[0]?.kind, "PostgresDatabase");
    const table = (await env.kube.kubectl(["get", "pgdb", "-n", ns], { check: true })).stdout;
    assert(/^pg-db-test\s+test_db\s+secret-pg-db-test\s+Ready\s+/m.test(table), table);
  });

  await t.step(
    "login works with the role name (the postfix is only for Azure single server)",
    async () => {
      await waitFor("a login with the Secret's password", async () => {
        const d = decode((await secret())!);
        const r = await login(pg, "test_db", d.PGPASSWORD!, d.PGDATABASE!);
        return r.code === 0 && r.stdout.includes("test_db");
      }, { timeoutMs: budget("react") });
      const owner = await pg.superSql(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'test_db'",
      );
      assertEquals(owner.trim(), "test_db_owner");
      const r = await pg.superSql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'test_db'");
      assertEquals(r.trim(), "t");
    },
  );

  await t.step(
    "rotation changes the password in place (same Secret uid) and the new one works",
    async () => {
      const before = (await secret())!;
      const old = decode(before).PGPASSWORD!;
      const rotated = await waitFor("a rotation", async () => {
        const s = await secret();
        return s && decode(s).PGPASSWORD !== old ? s : undefined;
      }, { timeoutMs: ROTATION_SECONDS * 1000 * 3 });
      assertEquals(rotated.metadata.uid, before.metadata.uid);
      await waitFor("a login with the rotated password", async () => {
        const d = decode((await secret())!);
        return (await login(pg, "test_db", d.PGPASSWORD!, "test_db")).code === 0;
      }, { timeoutMs: budget("react") });
      assert(
        (await login(pg, "test_db", old, "test_db")).code !== 0,
        "the old password no longer works",
      );
    },
  );

  await t.step("a deleted Secret is recreated with a new password", async () => {
    const old = decode((await secret())!).PGPASSWORD;
    await env.kube.kubectl(["delete", "secret", "secret-pg-db-test", "-n", ns], { check: true });
    const s = await waitFor("the Secret again", async () => await secret(), {
      timeoutMs: budget("react"),
    });
    assert(decode(s).PGPASSWORD !== old);
  });

  await t.step(
    "deleting the resource deletes only the Secret: database and role stay",
    async () => {
      await pg.superSql("CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (7)", {
        database: "test_db",
      });
      await env.kube.kubectl([
        "delete",
        "pgdb",
        "pg-db-test",
        "-n",
        ns,
        "--wait=true",
        "--timeout=60s",
      ], { check: true });
      await waitFor("the Secret to go", async () => (await secret()) === undefined);
      assertEquals(
        (await pg.superSql("SELECT id FROM keep_me", { database: "test_db" })).trim(),
        "7",
      );
      assertEquals(
        (await pg.superSql("SELECT count(*) FROM pg_roles WHERE rolname = 'test_db'")).trim(),
        "1",
      );
    },
  );

  await t.step(
    "no generated password appears in the server log or the program's logs",
    async () => {
      const log = await pg.readLog();
      assert(!/PASSWORD '(?!SCRAM-SHA-256\$)/.test(log), "only SCRAM verifiers reach the server");
      assert(!env.program!.logs().includes(pg.admin.password));
    },
  );
});

Deno.test({
  name: "PostgresDatabase through a DBCluster (--postgresdatabase-cluster), no libpq environment",
  ...opts,
}, async () => {
  await using env = await startEnv({
    pg: true,
    programArgs: ["--postgresdatabase-cluster", "shared-pg"],
  });
  await env.kube.apply(env.clusterManifest("shared-pg"));
  await env.startProgram();
  const ns = await env.namespace("pgdb-cluster");
  await env.kube.kubectl(["apply", "-n", ns, "-f", "-"], { stdin: README_PGDB, check: true });
  await env.waitPhase("pgdb", "pg-db-test", "Ready", { namespace: ns });
  const d = decode((await env.getJson<Secret>("secret", "secret-pg-db-test", ns))!);
  assertEquals([d.PGDATABASE, d.PGUSER, d.PGHOST, d.PGPORT], [
    "test_db",
    "test_db@servername",
    env.pg.host,
    String(env.pg.port),
  ]);
  assertEquals((await login(env.pg, "test_db", d.PGPASSWORD!, "test_db")).code, 0);
  assert(!env.program!.logs().includes(env.pg.admin.password), "no admin password in the logs");
});
