/**
 * Database against a real apiserver and a real PostgreSQL (admin NOT superuser), driven through
 * the real `dbtether run`: the README manifests, columns, deletion policies, claims, extension
 * failures, the namespace allow-list and idempotence.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { annotate, conditionOf, mergePatch, readyOf } from "./helpers/fixtures.ts";
import { psqlSession } from "./helpers/postgres.ts";
import { freePort } from "./helpers/free_port.ts";
import { mutatingSince } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Cond = { type: string; status: string; reason: string; message: string };
type Db = {
  metadata: { resourceVersion: string; finalizers?: string[] };
  status?: { phase?: string; message?: string; databaseName?: string; conditions?: Cond[] };
};

const README_DBCLUSTER = `apiVersion: dbtether.io/v1alpha1
kind: DBCluster
metadata:
  name: my-aurora-cluster
spec:
  endpoint: my-cluster.cluster-xxx.eu-west-1.rds.amazonaws.com
  port: 5432
  credentialsSecretRef:
    name: aurora-admin-credentials
    namespace: postgres-operator-system
`;
const README_SECRET = `apiVersion: v1
kind: Secret
metadata:
  name: aurora-admin-credentials
  namespace: postgres-operator-system
type: Opaque
stringData:
  username: postgres
  password: your-admin-password
`;
const README_DATABASE = await Deno.readTextFile(
  new URL("../examples/database.yaml", import.meta.url),
)
  .then((t) => t.split(/^---$/m).find((d) => /kind: Database\b/.test(d))!);

async function sql(env: TestEnv, q: string, database = "postgres"): Promise<string> {
  return (await env.pg.superSql(q, { database })).trim();
}

function database(
  o: { name: string; ns: string; cluster?: string; extra?: string; annotations?: string },
) {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata:
  name: ${o.name}
  namespace: ${o.ns}
${o.annotations ? `  annotations:\n${o.annotations}\n` : ""}spec:
  clusterRef:
    name: ${o.cluster ?? "test-pg"}
${o.extra ?? ""}`;
}

Deno.test(
  { name: "Database: README manifests, columns, deletion, claims, extensions", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("test-pg"));
    await env.waitPhase("dbcluster", "test-pg", "Connected");

    await t.step(
      "README DBCluster (unreachable endpoint) fails clearly; the README Database says why",
      async () => {
        await env.kube.kubectl(["create", "namespace", "postgres-operator-system"], {
          check: true,
        });
        await env.kube.apply(README_SECRET);
        // The README's endpoint is an example RDS name; resolving it would send a DNS query off
        // this machine, so the same manifest points at a closed loopback port instead.
        await env.kube.apply(
          README_DBCLUSTER.replace(
            "my-cluster.cluster-xxx.eu-west-1.rds.amazonaws.com",
            "127.0.0.1",
          )
            .replace("port: 5432", `port: ${freePort()}`),
        );
        await env.kube.apply(README_DATABASE);
        await env.waitPhase("dbcluster", "my-aurora-cluster", "Failed");
        const d = await env.waitPhase("database", "my-app-db", "Failed", {
          namespace: "default",
        }) as Db;
        assertEquals(readyOf(d)?.reason, "ClusterUnreachable");
        assertEquals(d.status?.databaseName, "my_app");
      },
    );

    await t.step(
      "pointed at the test server, the README Database reaches Ready; README columns",
      async () => {
        await env.kube.apply(env.clusterManifest("my-aurora-cluster"));
        await env.waitPhase("database", "my-app-db", "Ready", { namespace: "default" });
        assertEquals(
          await sql(
            env,
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'my_app'",
          ),
          "dbtether:default/my-app-db",
        );
        assertEquals(
          await sql(
            env,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'my_app'",
          ),
          "my_app_owner",
        );
        assertEquals(
          await sql(
            env,
            "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname IN ('uuid-ossp','pg_trgm')",
            "my_app",
          ),
          "pg_trgm,uuid-ossp",
        );
        const table = (await env.kube.kubectl(["get", "databases", "-A"], { check: true })).stdout;
        assert(/^NAMESPACE\s+NAME\s+CLUSTER\s+DATABASE\s+PHASE\s+AGE$/m.test(table), table);
        assert(
          /^default\s+my-app-db\s+my-aurora-cluster\s+my_app\s+Ready\s+\S+$/m.test(table),
          table,
        );
        const events = (await env.kube.kubectl([
          "get",
          "events",
          "-n",
          "default",
          "--field-selector",
          "involvedObject.name=my-app-db",
        ], { check: true })).stdout;
        assert(/DatabaseReady/.test(events), events);
      },
    );

    await t.step(
      "Retain (default): deleting the resource keeps the database and its data, claim released",
      async () => {
        await sql(env, "CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (42)", "my_app");
        await env.kube.kubectl([
          "delete",
          "database",
          "my-app-db",
          "-n",
          "default",
          "--wait=true",
          "--timeout=60s",
        ], { check: true });
        assertEquals(await sql(env, "SELECT id FROM keep_me", "my_app"), "42");
        assertEquals(
          await sql(
            env,
            "SELECT coalesce(shobj_description(oid, 'pg_database'), 'none') FROM pg_database WHERE datname = 'my_app'",
          ),
          "none",
        );
      },
    );

    const ns = await env.namespace("db");

    await t.step(
      "Delete drops the database even with an open session of another role",
      async () => {
        await env.kube.apply(
          database({ name: "drop-me", ns, extra: "  deletionPolicy: Delete\n" }),
        );
        await env.waitPhase("database", "drop-me", "Ready", { namespace: ns });
        // Made with the master user, as on a cloud (no superuser there); a role a superuser
        // made is tests/postgres_majors_test.ts's case.
        const made = await env.pg.psql(
          "CREATE ROLE holder LOGIN PASSWORD 'holder-pw-123'; GRANT drop_me_readonly TO holder",
        );
        assertEquals(made.code, 0, made.stderr);
        const session = psqlSession(
          env.pg,
          { user: "holder", password: "holder-pw-123", database: "drop_me" },
          { args: ["-c", "SELECT pg_sleep(120)"], output: "null" },
        );
        try {
          await waitFor("the session", async () =>
            (await sql(
              env,
              "SELECT count(*) FROM pg_stat_activity WHERE datname = 'drop_me' AND usename = 'holder'",
            )) === "1");
          await env.kube.kubectl([
            "delete",
            "database",
            "drop-me",
            "-n",
            ns,
            "--wait=true",
            "--timeout=60s",
          ], { check: true });
          assertEquals(
            await sql(env, "SELECT count(*) FROM pg_database WHERE datname = 'drop_me'"),
            "0",
          );
          assertEquals(
            await sql(env, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'drop\\_me\\_%'"),
            "0",
          );
        } finally {
          try {
            session.kill("SIGKILL");
          } catch { /* already ended: its session was terminated */ }
          await session.status;
        }
      },
    );

    await t.step(
      "a database claimed by another resource is refused; force-adopt with consent takes it over",
      async () => {
        await env.kube.apply(database({ name: "first", ns, extra: "  databaseName: shared_db\n" }));
        await env.waitPhase("database", "first", "Ready", { namespace: ns });
        await env.kube.apply(
          database({ name: "second", ns, extra: "  databaseName: shared_db\n" }),
        );
        const d = await env.waitPhase("database", "second", "Failed", { namespace: ns }) as Db;
        assertEquals(readyOf(d)?.reason, "DatabaseClaimedByOther");
        assert(d.status?.message?.includes(`dbtether:${ns}/first`), String(d.status?.message));
        assert(d.status?.message?.includes("dbtether.io/force-adopt"), String(d.status?.message));
        await env.kube.kubectl([
          "annotate",
          "database",
          "second",
          "-n",
          ns,
          "dbtether.io/force-adopt=true",
        ], { check: true });
        // The annotation alone is not enough: the platform team must allow adoption.
        const refused = await waitFor("AdoptionNotAllowed", async () => {
          const x = await env.getJson<Db>("database", "second", ns);
          return readyOf(x)?.reason === "AdoptionNotAllowed" ? x : undefined;
        });
        assert(
          /spec\.adoption\.allowedNamespaces/.test(readyOf(refused)!.message),
          readyOf(refused)!.message,
        );
        assertEquals(
          await sql(
            env,
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'shared_db'",
          ),
          `dbtether:${ns}/first`,
        );
        await env.kube.apply(env.clusterManifest("test-pg", {
          extraSpec: `  adoption:\n    allowedNamespaces:\n      names: [${ns}]\n`,
        }));
        await env.waitPhase("database", "second", "Ready", { namespace: ns });
        assertEquals(
          await sql(
            env,
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'shared_db'",
          ),
          `dbtether:${ns}/second`,
        );
      },
    );

    await t.step(
      "an extension the server cannot create is a clear condition, not a crash",
      async () => {
        await env.kube.apply(
          database({ name: "ext", ns, extra: "  extensions: [pg_trgm, no_such_extension]\n" }),
        );
        const d = await env.waitPhase("database", "ext", "Failed", { namespace: ns }) as Db;
        assertEquals(readyOf(d)?.reason, "ExtensionFailed");
        assertEquals([
          conditionOf(d, "ExtensionsReady")?.status,
          conditionOf(d, "ExtensionsReady")?.reason,
        ], [
          "False",
          "ExtensionFailed",
        ]);
        assert(/no_such_extension/.test(d.status?.message ?? ""), String(d.status?.message));
        assertEquals(
          await sql(env, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'", "ext"),
          "1",
        );
        assert(env.program?.process.pid, "the program keeps running");
        // One the cloud does not allow: file_fdw is not trusted, and the admin is no superuser
        // (as on RDS, Azure and Cloud SQL). The server's own reason is passed on.
        await mergePatch(env, { kind: "database", namespace: ns, name: "ext" }, {
          spec: { extensions: ["pg_trgm", "file_fdw"] },
        });
        const refused = await waitFor("file_fdw refused with the server's reason", async () => {
          const o = await env.getJson<Db>("database", "ext", ns);
          const c = conditionOf(o, "ExtensionsReady");
          return c?.reason === "ExtensionFailed" && /file_fdw/.test(c.message ?? "")
            ? c
            : undefined;
        }, { timeoutMs: budget("ready") });
        assert(/permission denied/i.test(refused.message ?? ""), String(refused.message));
        assertEquals(
          await sql(env, "SELECT count(*) FROM pg_extension WHERE extname = 'file_fdw'", "ext"),
          "0",
        );
        await mergePatch(env, { kind: "database", namespace: ns, name: "ext" }, {
          spec: { extensions: ["pg_trgm"] },
        });
        await env.waitPhase("database", "ext", "Ready", { namespace: ns });
      },
    );

    await t.step(
      "idempotence: 10 reconciles of a Ready Database send no mutating SQL and write nothing",
      async () => {
        await env.kube.apply(database({ name: "idem", ns }));
        await env.waitPhase("database", "idem", "Ready", { namespace: ns });
        await new Promise((r) => setTimeout(r, 1500));
        const before = (await mutatingSince(env, 0)).length;
        assert(before > 0, "the log shows the statements that created it");
        const reads = async () =>
          (await env.pg.readLog()).split("\n").filter((l) => l.includes("'idem'")).length;
        let rv = "";
        for (let i = 0; i < 10; i++) {
          const seen = await reads();
          await annotate(env, { kind: "database", namespace: ns, name: "idem" }, `test/touch=${i}`);
          rv = (await env.getJson<Db>("database", "idem", ns))!.metadata.resourceVersion;
          await waitFor(`reconcile ${i}`, async () => (await reads()) > seen);
        }
        await new Promise((r) => setTimeout(r, 2000));
        const after = await mutatingSince(env, 0);
        assertEquals(after.length, before, after.slice(before).join("\n"));
        assertEquals((await env.getJson<Db>("database", "idem", ns))!.metadata.resourceVersion, rv);
      },
    );

    await t.step("the admin password never appears in the program's logs", () => {
      assert(!env.program!.logs().includes(env.pg.admin.password));
    });
  },
);

Deno.test({
  name:
    "Database: a namespace outside the DBCluster's allow-list gets NamespaceNotAllowed and no SQL",
  ...opts,
}, async () => {
  await using env = await startEnv({ pg: true, program: true });
  const allowed = await env.namespace("allowed");
  const denied = await env.namespace("denied");
  await env.kube.apply(
    env.clusterManifest("test-pg", {
      extraSpec: `  allowedNamespaces:\n    names: [${allowed}]\n`,
    }),
  );
  await env.kube.apply(
    database({ name: "ok", ns: allowed, extra: "  databaseName: allowed_db\n" }),
  );
  await env.waitPhase("database", "ok", "Ready", { namespace: allowed });
  await env.kube.apply(
    database({ name: "nope", ns: denied, extra: "  databaseName: forbidden_db\n" }),
  );
  const d = await env.waitPhase("database", "nope", "Failed", { namespace: denied }) as Db;
  assertEquals(readyOf(d)?.reason, "NamespaceNotAllowed");
  assertEquals(d.status?.databaseName, "forbidden_db");
  assertEquals(d.metadata.finalizers, undefined, "no finalizer: nothing was done on the server");
  await new Promise((r) => setTimeout(r, 1500));
  const log = await env.pg.readLog();
  assert(!log.includes("forbidden_db"), "no SQL mentions the database");
  assertEquals(
    await sql(env, "SELECT count(*) FROM pg_database WHERE datname = 'forbidden_db'"),
    "0",
  );
  // Deleting it needs no cleanup on the server.
  await env.kube.kubectl([
    "delete",
    "database",
    "nope",
    "-n",
    denied,
    "--wait=true",
    "--timeout=30s",
  ], { check: true });
});
