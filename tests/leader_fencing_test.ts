/**
 * A deposed leader stops at once (issue 7 item 11), with two real replicas of `dbtether run`
 * (leader election on, short leases), a real apiserver and a real PostgreSQL whose log tags each
 * line with the session's application_name (`dbtether@<replica identity>/DBCluster/<name>`):
 *
 * - frozen: the leader is SIGSTOPped past its lease while it reconciles a burst of resources; the
 *   standby takes over and works; the old leader is resumed. The server log shows no mutating
 *   statement of the old leader after the new leader's first, no Event of the old leader is
 *   written after it resumed, the old leader exits 1, and every resource ends exactly as
 *   declared.
 * - cut off: the leader's connection to the apiserver hangs (a paused TCP proxy): its renewals
 *   are cut at the renew deadline, its SQL statement in flight is cancelled on the server and
 *   its pg_dump child is killed before the standby's first statement, and it exits 1 although
 *   every request it had open to the apiserver still hangs.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { markedRoles, secretData } from "./helpers/fixtures.ts";
import {
  backupYaml,
  databaseYaml,
  dumpConnected,
  holdLock,
  holdTransaction,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { holder, MUTATING, type Replica, startReplica, tagOf } from "./helpers/replicas.ts";
import { selectedMajor } from "./helpers/pg_install.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The index of the first line of the log matching `pick`, or -1. */
function firstIndex(lines: readonly string[], pick: (l: string) => boolean): number {
  return lines.findIndex(pick);
}

/** Waits for a process to exit (it was told to, or it must by itself); returns the code. */
async function exited(r: Replica, what: string): Promise<number> {
  let code: number | undefined;
  r.program.process.status.then((s) => (code = s.code));
  await waitFor(what, () => code !== undefined, { timeoutMs: budget("failover") });
  return code!;
}

function burst(ns: string, databases: number, users: number): string {
  const docs: string[] = [];
  for (let i = 0; i < databases; i++) {
    docs.push(`apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: fdb-${i}, namespace: ${ns} }
spec:
  clusterRef: { name: fence-pg }
  deletionPolicy: Delete
`);
  }
  for (let i = 0; i < users; i++) {
    docs.push(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: fuser-${i}, namespace: ${ns} }
spec:
  databaseRef: { name: fdb-${i} }
  privileges: readwrite
`);
  }
  return docs.join("---\n");
}

type Obj = {
  metadata: { generation?: number };
  status?: {
    phase?: string;
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string }[];
  };
};

async function allReady(env: TestEnv, ns: string, kind: string, n: number): Promise<boolean> {
  const r = await env.kube.kubectl(["get", kind, "-n", ns, "-o", "json"]);
  if (r.code !== 0) return false;
  const items = (JSON.parse(r.stdout) as { items: Obj[] }).items;
  return items.length === n &&
    items.every((o) =>
      o.status?.phase === "Ready" && o.status.observedGeneration === o.metadata.generation
    );
}

/** Every Database and DatabaseUser of the burst is exactly as declared, nothing more. */
async function assertDeclaredState(env: TestEnv, ns: string, databases: number, users: number) {
  const q = (sql: string) => env.pg.superSql(sql).then((s) => s.trim());
  for (let i = 0; i < databases; i++) {
    const db = `fdb_${i}`;
    assertEquals(
      await q(
        `SELECT pg_get_userbyid(datdba) || ' ' || shobj_description(oid, 'pg_database') ` +
          `FROM pg_database WHERE datname = '${db}'`,
      ),
      `${db}_owner dbtether:${ns}/fdb-${i}`,
      `database ${db}`,
    );
    for (const suffix of ["owner", "readonly", "readwrite", "admin"]) {
      assertEquals(
        await q(
          `SELECT shobj_description(oid, 'pg_authid') FROM pg_roles ` +
            `WHERE rolname = '${db}_${suffix}'`,
        ),
        `dbtether:Database/${ns}/fdb-${i}`,
        `role ${db}_${suffix}`,
      );
    }
  }
  for (let i = 0; i < users; i++) {
    const user = `fuser-${i}`;
    const password =
      (await secretData(env, { namespace: ns, name: `${user}-credentials` }))?.password ??
        "";
    const login = await env.pg.psql("SELECT current_user", {
      user,
      password,
      database: `fdb_${i}`,
    });
    assertEquals(login.stdout.trim(), user, `${user} logs in: ${login.stderr}`);
    assertEquals(await q(`SELECT pg_has_role('${user}', 'fdb_${i}_readwrite', 'MEMBER')`), "t");
  }
  assertEquals(await markedRoles(env.pg, ns), 4 * databases + users, "no role more than declared");
}

Deno.test(
  { name: "a leader frozen past its lease sends nothing after its successor starts", ...opts },
  async () => {
    await using env = await startEnv({ pg: true });
    await env.kube.apply(env.clusterManifest("fence-pg"));
    const lease = ["--lease-duration", "8s", "--renew-deadline", "5s", "--retry-period", "1s"];
    const replicas = [await startReplica(env, { lease }), await startReplica(env, { lease })];
    await using _a = replicas[0]!.program;
    await using _b = replicas[1]!.program;
    const ns = await env.namespace("fence");
    const DATABASES = 24, USERS = 12;

    const first = await waitFor("a leader", async () => {
      const h = await holder(env);
      return replicas.find((r) => r.identity === h);
    }, { timeoutMs: budget("failover") });
    const next = replicas.find((r) => r !== first)!;
    await env.kube.apply(burst(ns, DATABASES, USERS));
    // Freeze the leader in the middle of the burst: it has started on it, far from done.
    await waitFor("the leader to be reconciling the burst", async () => {
      const lines = (await env.pg.readLog()).split("\n");
      return lines.filter((l) => l.includes(tagOf(first)) && MUTATING.test(l) && /fdb_/.test(l))
        .length >= 3;
    }, { timeoutMs: budget("ready"), intervalMs: 20 });
    first.program.process.kill("SIGSTOP");
    const stoppedAt = new Date().toISOString();

    await waitFor(
      "the standby to take the lease",
      async () => (await holder(env)) === next.identity,
      {
        timeoutMs: budget("failover"),
      },
    );
    await waitFor(
      "the new leader's first mutating statement",
      async () =>
        (await env.pg.readLog()).split("\n").some((l) =>
          l.includes(tagOf(next)) && MUTATING.test(l)
        ),
    );
    const resumedAt = Math.floor(Date.now() / 1000) * 1000;
    first.program.process.kill("SIGCONT");
    const contAt = new Date().toISOString();

    assertEquals(await exited(first, "the old leader to exit"), 1, "it lost the lease");
    assert(/Lost the leader lease/.test(first.program.logs()), "it says why it exits");
    await waitFor("every Database Ready", () => allReady(env, ns, "databases", DATABASES), {
      timeoutMs: budget("bulk"),
      intervalMs: 500,
    });
    await waitFor("every DatabaseUser Ready", () => allReady(env, ns, "databaseusers", USERS), {
      timeoutMs: budget("bulk"),
      intervalMs: 500,
    });

    const lines = (await env.pg.readLog()).split("\n");
    const takeover = firstIndex(lines, (l) => l.includes(tagOf(next)) && MUTATING.test(l));
    const late = lines.slice(takeover).filter((l) => l.includes(tagOf(first)) && MUTATING.test(l));
    assertEquals(
      late,
      [],
      `no mutating statement of the old leader after the new one's first (stopped at ${stoppedAt}, ` +
        `resumed at ${contAt}, successor's first: ${lines[takeover]})`,
    );
    assert(
      lines.slice(0, takeover).some((l) => l.includes(tagOf(first)) && MUTATING.test(l)),
      "the old leader did work before it was frozen",
    );

    const events = JSON.parse(
      (await env.kube.kubectl(["get", "events", "-n", ns, "-o", "json"], { check: true })).stdout,
    ).items as { reportingInstance?: string; lastTimestamp?: string; reason: string }[];
    const lateEvents = events.filter((e) =>
      e.reportingInstance === first.identity && Date.parse(e.lastTimestamp ?? "") >= resumedAt
    );
    assertEquals(lateEvents, [], "no Event written by the old leader after it resumed");
    assert(events.some((e) => e.reportingInstance === next.identity), "the new leader's Events");

    await assertDeclaredState(env, ns, DATABASES, USERS);
  },
);

/** A TCP proxy that can stop forwarding (a network partition where requests just hang). */
function startProxy(target: { hostname: string; port: number }) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let paused = false;
  const conns: Deno.Conn[] = [];
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        // While paused, bytes are held: neither side sees an error, requests hang.
        while (paused) await new Promise((r) => setTimeout(r, 50));
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch { /* closed */ }
    await to.closeWrite().catch(() => {});
  };
  const accepting = (async () => {
    for await (const c of listener) {
      try {
        const up = await Deno.connect(target);
        conns.push(c, up);
        pipe(c, up);
        pipe(up, c);
      } catch {
        c.close();
      }
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    pause() {
      paused = true;
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting;
    },
  };
}

Deno.test(
  { name: "a leader cut off from the apiserver stops its SQL and its jobs at once", ...opts },
  async () => {
    // A killed client's backend that waits on a lock notices only by checking its socket
    // (client_connection_check_interval, PostgreSQL 14+).
    const check = selectedMajor() >= 14 ? ["client_connection_check_interval = 250ms"] : [];
    await using env = await startEnv({
      pg: { extraConf: ["log_disconnections = on", ...check] },
    });
    await env.kube.apply(env.clusterManifest("test-pg"));
    const url = new URL(env.kube.server);
    const proxy = startProxy({ hostname: url.hostname, port: Number(url.port) });
    const dir = await Deno.makeTempDir({ prefix: "dbtether-fence-" });
    try {
      const proxied = `${dir}/proxied.kubeconfig`;
      await Deno.writeTextFile(
        proxied,
        (await Deno.readTextFile(env.kube.kubeconfigPath)).replace(
          `server: ${env.kube.server}`,
          `server: https://127.0.0.1:${proxy.port}`,
        ),
        { mode: 0o600 },
      );
      // The margin between the two (6 s) is what keeps the leader's last act before the
      // standby's first, on a loaded machine too.
      const lease = ["--lease-duration", "10s", "--renew-deadline", "4s", "--retry-period", "1s"];
      const cut = await startReplica(env, { kubeconfig: proxied, lease });
      await using _cut = cut.program;
      await waitFor(
        "the proxied replica to lead",
        async () => (await holder(env)) === cut.identity,
        {
          timeoutMs: budget("failover"),
        },
      );
      const standby = await startReplica(env, { lease });
      await using _standby = standby.program;

      const ns = await env.namespace("cutoff");
      await Deno.mkdir(`${dir}/store`);
      await env.kube.apply(storageYaml("local", { localPath: `${dir}/store` }));
      await env.kube.apply(databaseYaml(ns, "app", "cut_app"));
      await waitPhase(env, "database", "app", "Ready", { namespace: ns });
      await env.pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", {
        database: "cut_app",
      });
      // A dump waiting for a lock, and a CREATE ROLE waiting for an uncommitted one.
      const lock = await holdLock(env, "cut_app", "t");
      await env.kube.apply(backupYaml(ns, "bk", "app", "local"));
      await waitPhase(env, "backup", "bk", "Running", { namespace: ns });
      await dumpConnected(env, "cut_app");
      const role = holdTransaction(env, "postgres", 'CREATE ROLE "cut-user";');
      await role.written;
      await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: cut-user, namespace: ${ns} }
spec:
  databaseRef: { name: app }
  privileges: readonly
`);
      const waiting = () =>
        env.pg.superSql(
          `SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE ` +
            `'dbtether@${cut.identity}/%' AND wait_event_type = 'Lock' AND query LIKE 'CREATE ROLE%'`,
        ).then(Number);
      await waitFor(
        "the leader's CREATE ROLE to wait on the lock",
        async () => (await waiting()) === 1,
      );

      proxy.pause();
      assertEquals(await exited(cut, "the cut-off leader to exit"), 1, "it lost the lease");
      assert(/Lost the leader lease/.test(cut.program.logs()), "it says why it exits");
      assertEquals(await waiting(), 0, "its statement was cancelled on the server");
      assertEquals(
        (await env.pg.superSql(
          "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbtether-backup'",
        )).trim(),
        "0",
        "its pg_dump was killed",
      );

      await waitFor("the standby to lead", async () => (await holder(env)) === standby.identity, {
        timeoutMs: budget("failover"),
      });
      await waitFor(
        "the new leader's first mutating statement",
        async () =>
          (await env.pg.readLog()).split("\n").some((l) =>
            l.includes(tagOf(standby)) && MUTATING.test(l)
          ),
      );
      const lines = (await env.pg.readLog()).split("\n");
      const takeover = firstIndex(lines, (l) => l.includes(tagOf(standby)) && MUTATING.test(l));
      const cancelled = firstIndex(
        lines,
        (l) => l.includes(tagOf(cut)) && /canceling statement due to user request/.test(l),
      );
      const dumpGone = firstIndex(
        lines,
        (l) => l.includes("[dbtether-backup]") && /disconnection: session time/.test(l),
      );
      assert(cancelled >= 0 && cancelled < takeover, "cancelled before the successor's first act");
      assert(dumpGone >= 0 && dumpGone < takeover, "pg_dump gone before the successor's first act");
      assertEquals(
        lines.slice(takeover).filter((l) => l.includes(tagOf(cut)) && MUTATING.test(l)),
        [],
        "nothing of the old leader after the new one's first statement",
      );

      // The successor finishes both, once the locks are gone.
      await role.end("ROLLBACK");
      await lock.release();
      await waitPhase(env, "databaseuser", "cut-user", "Ready", { namespace: ns });
      await waitPhase(env, "backup", "bk", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
      });
    } finally {
      await proxy.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
