/**
 * More DatabaseUser behaviour against the real apiserver and PostgreSQL, with `dbtether run` as a
 * subprocess: scheduled rotation (interval) end to end and no rotation in between (days),
 * perDatabase Secrets, the owner level and downgrades, and recovery after a server outage.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { budget } from "./helpers/timeouts.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import {
  annotate,
  readyOf,
  runsAs,
  secretData,
  type UserObj,
  waitReason,
  waitRefused,
} from "./helpers/fixtures.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Obj = UserObj;
type Creds = { user: string; password: string; database: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function database(name: string, ns: string, cluster = "main"): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterRef: { name: ${cluster} }
  deletionPolicy: Delete
`;
}

function user(name: string, ns: string, spec: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: ${name}, namespace: ${ns} }
spec:
${spec.replace(/^/gm, "  ")}
`;
}

/** Waits until the user is Ready for its current generation; returns its Secret's credentials. */
async function readyCreds(env: TestEnv, name: string, ns: string, secret = `${name}-credentials`) {
  await waitFor(`DatabaseUser ${name} Ready for its generation`, async () => {
    const u = await env.getJson<Obj>("databaseuser", name, ns);
    return u?.status?.phase === "Ready" &&
      u.status.observedGeneration === u.metadata.generation;
  }, { timeoutMs: budget("ready"), intervalMs: 250 }).catch(async (e) => {
    const u = await env.getJson<Obj>("databaseuser", name, ns);
    const logs = env.program?.logs().split("\n").slice(-5).join("\n") ?? "program not running";
    throw new Error(`${(e as Error).message}: ${JSON.stringify(u?.status)}\n${logs}`);
  });
  const d = (await secretData(env, { namespace: ns, name: secret }))!;
  return { user: d.username!, password: d.password!, database: d.database! };
}

/** Changes an annotation of a Database 10 times: each queues a reconcile of its users. */
async function forceReconciles(env: TestEnv, db: string, ns: string) {
  for (let i = 0; i < 10; i++) {
    await annotate(
      env,
      { kind: "database", namespace: ns, name: db },
      `test/force=${Date.now()}-${i}`,
    );
    await sleep(300);
  }
  await sleep(2000);
}

const passwordStatements = (log: string) =>
  log.split("\n").filter((l) => /(statement|execute [^:]*): ALTER ROLE .*PASSWORD/i.test(l));

Deno.test(
  { name: "DatabaseUser rotation schedule, perDatabase, owner, downgrades", ...opts },
  async (t) => {
    await using env = await startEnv({
      pg: { extraConf: ["log_statement = 'all'"] },
      program: true,
    });
    await env.kube.apply(env.clusterManifest("main"));
    const ns = await env.namespace("more");

    await t.step("rotation.days: no rotation and no busy loop between reconciles", async () => {
      await env.kube.apply(database("monthly", ns));
      await env.kube.apply(
        user("monthly", ns, "databaseRef: { name: monthly }\nrotation: { days: 30 }"),
      );
      const c = await readyCreds(env, "monthly", ns);
      const u = (await env.getJson<Obj>("databaseuser", "monthly", ns))!;
      const set = Date.parse(u.status!.passwordUpdatedAt!);
      assertEquals(Date.parse(u.status!.nextRotation!) - set, 30 * 86_400_000);
      await sleep(1500);
      const rvBefore = (await env.getJson<Obj>("secret", "monthly-credentials", ns))!.metadata
        .resourceVersion;
      const logBefore = (await env.pg.readLog()).length;
      await forceReconciles(env, "monthly", ns);
      const forced = (await env.pg.readLog()).slice(logBefore);
      assertEquals(passwordStatements(forced), []);
      assert(/(statement|execute [^:]*): SELECT/.test(forced), "reconciles did run");
      // A period beyond setTimeout's 24.8-day limit must not turn into an immediate requeue.
      const quietFrom = (await env.pg.readLog()).length;
      await sleep(3000);
      const quiet = (await env.pg.readLog()).slice(quietFrom).split("\n").filter((l) =>
        /(statement|execute [^:]*): /.test(l)
      );
      assert(
        quiet.length < 30,
        `${quiet.length} statements in 3 s of quiet:\n${quiet.slice(0, 5)}`,
      );
      assertEquals(
        (await env.getJson<Obj>("secret", "monthly-credentials", ns))!.metadata.resourceVersion,
        rvBefore,
      );
      assert(await runsAs(env.pg, c));
    });

    await t.step("rotation.interval: rotates on schedule; new works, old fails", async () => {
      await env.kube.apply(database("sched", ns));
      await env.kube.apply(
        user("tick", ns, "databaseRef: { name: sched }\nrotation: { interval: 5s }"),
      );
      const first = await readyCreds(env, "tick", ns);
      const u1 = (await env.getJson<Obj>("databaseuser", "tick", ns))!.status!;
      const second = await waitFor("scheduled rotation", async () => {
        const d = await secretData(env, { namespace: ns, name: "tick-credentials" });
        return d && d.password !== first.password ? d : undefined;
      }, { timeoutMs: budget("react"), intervalMs: 250 });
      const u2 = await waitFor("status after the rotation", async () => {
        const s = (await env.getJson<Obj>("databaseuser", "tick", ns))?.status;
        return s?.passwordUpdatedAt !== u1.passwordUpdatedAt ? s : undefined;
      });
      assert(Date.parse(u2.passwordUpdatedAt!) > Date.parse(u1.passwordUpdatedAt!));
      assert(Date.parse(u2.nextRotation!) > Date.parse(u1.nextRotation!));
      assertEquals(Date.parse(u2.nextRotation!) - Date.parse(u2.passwordUpdatedAt!), 5000);
      const now: Creds = { user: second.username!, password: second.password!, database: "sched" };
      // The next rotation may land while we check: accept a newer Secret, never a stale one.
      assert(
        await runsAs(env.pg, now) ||
          (await secretData(env, { namespace: ns, name: "tick-credentials" }))!.password !==
            second.password,
        "the rotated password logs in",
      );
      assert(!(await runsAs(env.pg, first)), "the old password fails");
      await env.kube.kubectl(["delete", "databaseuser", "tick", "-n", ns, "--timeout=60s"], {
        check: true,
      });
    });

    await t.step("perDatabase: one Secret per Database, each logs in, no re-rotation", async () => {
      await env.kube.apply(database("pa", ns));
      await env.kube.apply(database("pb", ns));
      await env.kube.apply(user(
        "multi",
        ns,
        `databases:
  - { name: pa, privileges: readwrite }
  - { name: pb }
secretGeneration: perDatabase`,
      ));
      await readyCreds(env, "multi", ns, "multi-pa-credentials");
      const u = (await env.getJson<Obj>("databaseuser", "multi", ns))!;
      assertEquals(u.status?.secretNames, ["multi-pa-credentials", "multi-pb-credentials"]);
      assertEquals(await secretData(env, { namespace: ns, name: "multi-credentials" }), undefined);
      const a = (await secretData(env, { namespace: ns, name: "multi-pa-credentials" }))!;
      const b = (await secretData(env, { namespace: ns, name: "multi-pb-credentials" }))!;
      assertEquals([a.database, b.database, a.username, b.username], [
        "pa",
        "pb",
        "multi",
        "multi",
      ]);
      // The raw template lists all of the user's databases in every Secret, as dbtether does.
      assertEquals(Object.keys(a).sort(), [
        "database",
        "databases",
        "host",
        "password",
        "port",
        "uri",
        "username",
      ]);
      assertEquals([a.databases, b.databases], ["pa,pb", "pa,pb"]);
      assertEquals([new URL(a.uri!).pathname, new URL(b.uri!).pathname], ["/pa", "/pb"]);
      assert(await runsAs(env.pg, { user: "multi", password: a.password!, database: "pa" }));
      assert(await runsAs(env.pg, { user: "multi", password: b.password!, database: "pb" }));
      const w = await env.pg.psql("CREATE TEMP TABLE x (i int); SELECT 1", {
        user: "multi",
        password: a.password!,
        database: "pa",
      });
      assertEquals(w.code, 0, w.stderr);
      const rvs = async () =>
        await Promise.all(
          ["multi-pa-credentials", "multi-pb-credentials"].map(async (n) =>
            (await env.getJson<Obj>("secret", n, ns))!.metadata.resourceVersion
          ),
        );
      await sleep(1500);
      const before = await rvs();
      const logBefore = (await env.pg.readLog()).length;
      await forceReconciles(env, "pa", ns);
      await forceReconciles(env, "pb", ns);
      assertEquals(passwordStatements((await env.pg.readLog()).slice(logBefore)), []);
      assertEquals(await rvs(), before);
      assertEquals(
        (await secretData(env, { namespace: ns, name: "multi-pb-credentials" }))!.password,
        b.password,
      );
    });

    await t.step("owner: owns existing objects; a second owner is refused", async () => {
      await env.kube.apply(database("own", ns));
      await env.kube.apply(user("builder", ns, "database: { name: own, privileges: admin }"));
      const builder = await readyCreds(env, "builder", ns);
      const made = await env.pg.psql(
        "CREATE TABLE existing (id int); INSERT INTO existing VALUES (1)",
        builder,
      );
      assertEquals(made.code, 0, made.stderr);
      await env.kube.apply(user("boss", ns, "database: { name: own, privileges: owner }"));
      const boss = await readyCreds(env, "boss", ns);
      const r = await env.pg.psql(
        `ALTER TABLE existing ADD COLUMN note text;
       CREATE INDEX existing_id ON existing (id);
       CREATE TABLE fresh (id int);
       SELECT tableowner FROM pg_tables WHERE tablename = 'fresh'`,
        boss,
      );
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout.trim(), "own_owner");
      await env.kube.apply(user("boss2", ns, "database: { name: own, privileges: owner }"));
      const refused = await waitRefused(env, {
        kind: "databaseuser",
        namespace: ns,
        name: "boss2",
        reason: "OwnerExists",
      });
      assert(
        /Cannot make "boss2" owner of database "own": "boss" is its owner already/.test(
          readyOf(refused)!.message,
        ),
        readyOf(refused)!.message,
      );
      assertEquals(await secretData(env, { namespace: ns, name: "boss2-credentials" }), undefined);
    });

    await t.step("downgrades revoke: admin → readonly, readwrite → readonly", async () => {
      await env.kube.apply(database("dg", ns));
      await env.kube.apply(user("dgadm", ns, "database: { name: dg, privileges: admin }"));
      await env.kube.apply(user("dgrw", ns, "database: { name: dg, privileges: readwrite }"));
      const adm = await readyCreds(env, "dgadm", ns);
      const rw = await readyCreds(env, "dgrw", ns);
      const q = async (c: Creds, sql: string) => (await env.pg.psql(sql, c)).code === 0;
      assert(await q(adm, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)"), "admin creates");
      assert(await q(rw, "INSERT INTO t VALUES (2)"), "readwrite inserts");

      await env.kube.apply(user("dgadm", ns, "database: { name: dg, privileges: readonly }"));
      await env.kube.apply(user("dgrw", ns, "database: { name: dg, privileges: readonly }"));
      const adm2 = await readyCreds(env, "dgadm", ns);
      const rw2 = await readyCreds(env, "dgrw", ns);
      assertEquals(adm2.password, adm.password, "a downgrade does not rotate");
      assert(await q(adm2, "SELECT count(*) FROM t"), "downgraded admin still reads");
      assert(!(await q(adm2, "CREATE TABLE t2 (id int)")), "downgraded admin cannot CREATE");
      assert(!(await q(adm2, "RESET ROLE; CREATE TABLE t3 (id int)")), "not even after RESET ROLE");
      assert(!(await q(adm2, "INSERT INTO t VALUES (3)")), "downgraded admin cannot INSERT");
      assert(!(await q(adm2, "DROP TABLE t")), "downgraded admin cannot DROP");
      assert(await q(rw2, "SELECT count(*) FROM t"), "downgraded readwrite still reads");
      assert(!(await q(rw2, "INSERT INTO t VALUES (4)")), "downgraded readwrite cannot INSERT");
      assert(!(await q(rw2, "DELETE FROM t")), "downgraded readwrite cannot DELETE");
      const groups = await env.pg.superSql(
        `SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
       JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = 'dgadm' ORDER BY 1`,
      );
      assertEquals(groups.trim(), "dg_readonly");
      const settings = await env.pg.superSql(
        `SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles u ON u.oid = s.setrole
       WHERE u.rolname = 'dgadm'`,
      );
      assertEquals(settings.trim(), "0", "the role setting of the admin level is gone");
    });
  },
);

Deno.test(
  { name: "DatabaseUser and Database recover promptly after an outage", ...opts },
  async (t) => {
    // Long backoff: without the DBCluster → user mapping, recovery would wait for it.
    await using env = await startEnv({
      pg: true,
      program: true,
      programArgs: ["--backoff-max", "3m", "--health-check-interval", "2s"],
    });
    await env.kube.apply(env.clusterManifest("main", { extraSpec: "  healthCheckInterval: 2s\n" }));
    const ns = await env.namespace("outage");
    await env.kube.apply(database("app", ns));
    await env.kube.apply(user("plain", ns, "databaseRef: { name: app }"));
    await env.kube.apply(user("rot", ns, "databaseRef: { name: app }\nrotation: { days: 7 }"));
    const plain = await readyCreds(env, "plain", ns);
    await readyCreds(env, "rot", ns);

    await t.step("server down: ClusterUnreachable on the Database and the users", async () => {
      await env.pg.stop();
      await waitReason(env, {
        kind: "dbcluster",
        namespace: "",
        name: "main",
        reason: "ClusterUnreachable",
      }).catch(async () => {
        // DBCluster reasons may differ; its phase is what counts.
        await env.waitPhase("dbcluster", "main", "Failed");
      });
      for (
        const [kind, name] of [["database", "app"], ["databaseuser", "plain"], [
          "databaseuser",
          "rot",
        ]]
      ) {
        const o = await waitReason(env, {
          kind: kind!,
          namespace: ns,
          name: name!,
          reason: "ClusterUnreachable",
        });
        assertEquals(readyOf(o)?.status, "False");
        assert(!readyOf(o)!.message.includes(plain.password));
      }
      // Long enough for the per-key backoff (200 ms doubling, capped at 3m) to grow past 50 s,
      // well beyond the react budget recovery is allowed below.
      await sleep(40_000);
    });

    await t.step("server back: all Ready within seconds, not after the backoff", async () => {
      await env.pg.start();
      const start = Date.now();
      await env.waitPhase("dbcluster", "main", "Connected", { timeoutMs: budget("recovery") });
      const connected = Date.now() - start;
      const times = await Promise.all(
        [["database", "app"], ["databaseuser", "plain"], ["databaseuser", "rot"]].map(
          async ([kind, name]) => {
            await env.waitPhase(kind!, name!, "Ready", {
              namespace: ns,
              timeoutMs: budget("react"),
            });
            return `${kind}/${name} ${Date.now() - start} ms`;
          },
        ),
      );
      const took = Date.now() - start;
      // Without the mappings (DBCluster → users, Database → users) the users would wait out a
      // backoff of 50 s or more here; with them, recovery takes a few seconds on a quiet machine
      // and stays within the react budget on a loaded one.
      assert(
        took - connected < budget("react"),
        `Connected after ${connected} ms; ${times.join(", ")}`,
      );
      console.log(`Connected after ${connected} ms; Ready: ${times.join(", ")}`);
      assert(await runsAs(env.pg, plain), "the Secret's password still works");
    });
  },
);
