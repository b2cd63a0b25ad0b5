/**
 * Failing dependencies (issue 13): PostgreSQL, the apiserver and the object storage stop,
 * error or reset connections while the real program runs. Each test checks what a user relies
 * on: the program does not crash (or, where it exits by design, a restart like Kubernetes'
 * converges), says precisely why it waits, backs off with a cap instead of looping, and
 * applies what was declared meanwhile by itself once the dependency is back.
 *
 * `DBTETHER_VERIFY_OUTAGE_S` (default 15; `make verify-long`: 180) is how long each dependency
 * stays down.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import {
  backupYaml,
  databaseYaml,
  dumpConnected,
  holdLock,
  SEED,
  storageYaml,
} from "../helpers/backup.ts";
import { startEnv, type TestEnv } from "../helpers/env.ts";
import { type FaultMode, type FaultProxy, startFaultProxy } from "../helpers/fault_proxy.ts";
import { mergePatch, readyOf, runsAs, secretData, waitReason } from "../helpers/fixtures.ts";
import { freePort } from "../helpers/free_port.ts";
import type { RunningProgram } from "../helpers/program.ts";
import { holder, MUTATING, type Replica, startReplica } from "../helpers/replicas.ts";
import { openUploads, startMinio, type StorageServer } from "../helpers/storage_servers.ts";
import { budget } from "../helpers/timeouts.ts";
import { waitFor } from "../helpers/wait.ts";
import {
  assertCompleteDump,
  counterSum,
  figure,
  list,
  pairs,
  param,
  running,
  waitPairsReady,
} from "./workload.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const outageSeconds = () => param("DBTETHER_VERIFY_OUTAGE_S", 15);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const elapsed = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** The retry backoff the test program runs with (testRunArgs: 200ms doubling, capped). */
const BACKOFF_BASE_S = 0.2;
const BACKOFF_MAX_S = 5;

/**
 * The most attempts one key may make in `seconds` under a capped exponential backoff from
 * BACKOFF_BASE_S to BACKOFF_MAX_S, doubled: a reconcile triggered by a watch event (its own
 * status write, a related object) may come on top of a timer. A hot loop makes hundreds.
 */
function attemptBound(seconds: number): number {
  let n = 1, t = 0, d = BACKOFF_BASE_S;
  while (t + d <= seconds) {
    t += d;
    d = Math.min(BACKOFF_MAX_S, d * 2);
    n++;
  }
  return 2 * n;
}

async function metrics(port: number): Promise<string> {
  return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** Reconciles counted so far, per controller, of the dbtether_reconcile_total counter. */
function reconciles(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^dbtether_reconcile_total\{([^}]*)\} ([0-9.e+]+)$/gm)) {
    const controller = /controller="([^"]*)"/.exec(m[1]!)?.[1] ?? "?";
    out[controller] = (out[controller] ?? 0) + Number(m[2]);
  }
  return out;
}

/** How many objects of each dbtether kind the test declared (the keys that may fail). */
async function keys(env: TestEnv, ns: string): Promise<Record<string, number>> {
  return {
    database: (await list(env, "databases", ns)).items.length,
    databaseuser: (await list(env, "databaseusers", ns)).items.length,
  };
}

Deno.test(
  { name: "PostgreSQL stopped and restarted: precise reason, capped backoff, recovery", ...opts },
  async () => {
    const outage = outageSeconds();
    const metricsPort = freePort();
    await using env = await startEnv({
      pg: true,
      program: true,
      programArgs: ["--metrics-bind-address", `127.0.0.1:${metricsPort}`],
    });
    // The DBCluster's own status comes from its health check (default every 5 min): a short
    // interval, as for a server whose status users watch.
    await env.kube.apply(env.clusterManifest("main", { extraSpec: "  healthCheckInterval: 5s\n" }));
    const ns = await env.namespace("pgdown");
    await env.kube.apply(pairs(ns, { prefix: "p", cluster: "main", n: 3 }));
    await waitPairsReady(env, ns, { n: 3, since: Date.now() });

    await env.pg.stop();
    const down = Date.now();
    // Declared while the server is down: a new pair, and a change to a Ready user.
    await env.kube.apply(pairs(ns, { prefix: "q", cluster: "main", n: 1 }));
    await mergePatch(env, { kind: "databaseuser", namespace: ns, name: "p-000" }, {
      spec: { connectionLimit: 7 },
    });
    const unreachable = /^Cannot .*: server 127\.0\.0\.1:\d+ unreachable \(.*ECONNREFUSED/;
    const db = await waitReason(env, {
      kind: "database",
      namespace: ns,
      name: "q-000",
      reason: "ClusterUnreachable",
    });
    const dbMessage = readyOf(db);
    assert(unreachable.test(dbMessage?.message ?? ""), dbMessage?.message);
    figure("dependencies: a Database while PostgreSQL is down", dbMessage?.message ?? "");
    await waitReason(env, {
      kind: "dbcluster",
      namespace: "",
      name: "main",
      reason: "ClusterUnreachable",
    });
    figure("dependencies: PostgreSQL down until every resource said so", elapsed(down), "react");

    // Count the reconciles over the rest of the outage: a capped backoff, not a loop.
    const before = reconciles(await metrics(metricsPort));
    const window = Date.now();
    await sleep(outage * 1000);
    assert(await running(env.program), "the program exited while PostgreSQL was down");
    const after = reconciles(await metrics(metricsPort));
    figure(
      "dependencies: reconciles per controller during the outage",
      JSON.stringify(
        Object.fromEntries(
          Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v),
        ),
      ),
    );
    const seconds = (Date.now() - window) / 1000;
    const declared = await keys(env, ns);
    const bound = attemptBound(seconds);
    for (const [controller, n] of Object.entries(declared)) {
      const made = (after[controller] ?? 0) - (before[controller] ?? 0);
      figure(
        `dependencies: ${controller} reconciles in ${seconds.toFixed(0)} s of outage`,
        `${made} for ${n} objects (bound ${n * bound})`,
      );
      assert(made <= n * bound, `${controller}: ${made} reconciles in ${seconds} s for ${n} keys`);
    }
    const user = await env.getJson<
      { status?: { conditions?: { type: string; reason: string }[] } }
    >(
      "databaseuser",
      "p-000",
      ns,
    );
    figure("dependencies: the changed user's reason while down", readyOf(user)?.reason ?? "none");

    await env.pg.start();
    const back = Date.now();
    await waitFor(
      "the DBCluster Connected again",
      async () =>
        (await env.getJson<{ status?: { phase?: string } }>("dbcluster", "main"))?.status?.phase ===
          "Connected",
      { timeoutMs: budget("recovery"), intervalMs: 500 },
    );
    await waitPairsReady(env, ns, { n: 4, since: back });
    figure("dependencies: PostgreSQL back until everything Ready", elapsed(back), "recovery");
    // What was declared meanwhile is applied: the limit, and the new user logs in.
    const s = await secretData(env, { namespace: ns, name: "p-000-credentials" });
    const limit = await env.pg.superSql(
      `SELECT rolconnlimit FROM pg_roles WHERE rolname = '${s!.username}'`,
    );
    assertEquals(limit.trim(), "7", "the connection limit set while down");
    const q = await secretData(env, { namespace: ns, name: "q-000-credentials" });
    assert(
      await runsAs(env.pg, { user: q!.username!, password: q!.password!, database: "q_000" }),
      "the user declared while down logs in",
    );
    assert(await running(env.program), "the program exited");
  },
);

/**
 * Restarts `start()`'s program whenever it exits, as Kubernetes restarts a container, until
 * `stop()`; counts the exits and keeps their codes.
 */
function supervise(env: TestEnv, start: () => Promise<RunningProgram>) {
  const exits: number[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      const p = env.program;
      if (p && !(await running(p))) {
        exits.push(await p.process.status.then((s) => s.code));
        if (on) await start();
      }
      await sleep(500);
    }
  })();
  return {
    exits,
    async stop() {
      on = false;
      await loop;
    },
  };
}

Deno.test(
  {
    name: "the apiserver stopped and restarted: no crash, watches resume, work converges",
    ...opts,
  },
  async () => {
    const outage = outageSeconds();
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("main"));
    const ns = await env.namespace("apidown");
    await env.kube.apply(pairs(ns, { prefix: "a", cluster: "main", n: 2 }));
    await waitPairsReady(env, ns, { n: 2, since: Date.now() });

    // Without leader election the program rides the outage out.
    await env.kube.stopApiserver();
    const logsBefore = env.program!.logs().length;
    await sleep(outage * 1000);
    assert(await running(env.program), "the program exited while the apiserver was down");
    const lines = env.program!.logs().slice(logsBefore).split("\n").filter(Boolean).length;
    figure(`dependencies: log lines in ${outage} s without the apiserver`, lines);
    assert(lines <= 20 * outage, `${lines} log lines in ${outage} s: a retry loop`);
    await env.kube.startApiserver();
    let back = Date.now();
    await env.kube.apply(pairs(ns, { prefix: "b", cluster: "main", n: 2 }));
    await mergePatch(env, { kind: "databaseuser", namespace: ns, name: "a-000" }, {
      spec: { connectionLimit: 9 },
    });
    await waitPairsReady(env, ns, { n: 4, since: back });
    figure(
      "dependencies: apiserver back until new work Ready (no leader election)",
      elapsed(back),
      "recovery",
    );
    const s = await secretData(env, { namespace: ns, name: "a-000-credentials" });
    const limit = () =>
      env.pg.superSql(`SELECT rolconnlimit FROM pg_roles WHERE rolname = '${s!.username}'`);
    await waitFor("the limit applied", async () => (await limit()).trim() === "9", {
      timeoutMs: budget("react"),
    });

    // With leader election the lease cannot be renewed: the program gives up leading and
    // exits once --renew-deadline (10 s) has passed; Kubernetes restarts it.
    const startLeader = () => env.startProgram(["--leader-elect"]);
    await env.killProgram("SIGTERM");
    await startLeader();
    back = Date.now();
    await env.kube.apply(pairs(ns, { prefix: "c", cluster: "main", n: 1 }));
    await waitPairsReady(env, ns, { n: 5, since: back });
    const sup = supervise(env, startLeader);
    try {
      await env.kube.stopApiserver();
      const down = Date.now();
      await sleep(Math.max(outage, 20) * 1000);
      figure(
        `dependencies: exits of the leader-elected program in ${
          elapsed(down)
        } without the apiserver`,
        sup.exits.length ? sup.exits.join(", ") : "none",
      );
      assert(sup.exits.length >= 1, "the leader kept running without renewing its lease");
      await env.kube.startApiserver();
      back = Date.now();
      await env.kube.apply(pairs(ns, { prefix: "d", cluster: "main", n: 1 }));
      await waitPairsReady(env, ns, { n: 6, since: back });
      figure(
        "dependencies: apiserver back until new work Ready (leader election)",
        elapsed(back),
        "failover",
      );
      figure("dependencies: exit codes of the leader-elected program", sup.exits.join(", "));
    } finally {
      await sup.stop();
    }
    assert(await running(env.program), "the program is not running at the end");
  },
);

type BackupObj = {
  metadata: { name: string };
  status?: {
    phase?: string;
    path?: string;
    sha256?: string;
    storageFailures?: number;
    conditions?: { type: string; reason: string; message: string }[];
  };
};

/** The storage retry schedule's most runs in `seconds` (5 s doubling to 60 s), plus one. */
function storageRunBound(seconds: number): number {
  let n = 1, t = 0, d = 5;
  while (t + d <= seconds) {
    t += d;
    d = Math.min(60, d * 2);
    n++;
  }
  return n + 1;
}

/**
 * PostgreSQL and the program, whose Backups retry storage failures for 300 s past the outage
 * (so they wait it out) and whose metrics are served on `metricsPort`.
 */
function startBackupEnv(
  outage: number,
  metricsPort: number,
  extraArgs: string[] = [],
): Promise<TestEnv> {
  return startEnv({
    pg: true,
    program: true,
    programArgs: [
      ...["--backup-storage-retry-for", `${outage + 300}s`],
      ...["--metrics-bind-address", `127.0.0.1:${metricsPort}`],
      ...extraArgs,
    ],
  });
}

/**
 * A Backup under storage faults: reads it, keeping the most failed runs seen
 * (`status.storageFailures`).
 */
function retriedBackup(env: TestEnv, ns: string, name: string) {
  let most = 0;
  const get = async () => {
    const b = await env.getJson<BackupObj>("backup", name, ns);
    most = Math.max(most, b?.status?.storageFailures ?? 0);
    return b;
  };
  return {
    get,
    /** Waits until it is Completed (failing at once if it Failed). */
    completed: () =>
      waitFor(`${name} Completed`, async () => {
        const b = await get();
        assert(b?.status?.phase !== "Failed", `${name} Failed: ${readyOf(b)?.message}`);
        return b?.status?.phase === "Completed" && b;
      }, { timeoutMs: budget("recovery"), intervalMs: 500 }),
    /**
     * Asserts the failed runs in `seconds` of faults followed the capped schedule (and that
     * there were at least `least`: it retried).
     */
    assertRuns(seconds: number, what: string, least = 3): { most: number; runs: number } {
      const runs = storageRunBound(seconds);
      figure(
        `dependencies: failed runs in ${seconds.toFixed(0)} s of ${what}`,
        `${most} (bound ${runs})`,
      );
      assert(most >= least && most <= runs, `${most} failed runs in ${seconds} s`);
      return { most, runs };
    },
  };
}

/**
 * The Completed Backup's dump is complete and the only one besides `before` (earlier Backups'
 * dumps); no multipart upload is open.
 */
async function assertOnlyDump(
  minio: StorageServer,
  done: BackupObj,
  before: string[] = [],
): Promise<string[]> {
  const store = minio.makeStore({ bucket: "backups" });
  await assertCompleteDump(store, done, done.metadata.name);
  const keys = (await store.list("")).map((o) => o.key);
  assertEquals(
    keys.filter((k) => k.endsWith(".sql.gz")).sort(),
    [...before, done.status!.path!].sort(),
    "one dump per Backup",
  );
  assertEquals(await openUploads(minio, { bucket: "backups" }), [], "multipart uploads left");
  return keys;
}

Deno.test(
  {
    name: "the storage erroring, resetting, down: reasons, capped retries, one complete dump",
    ...opts,
  },
  async () => {
    const outage = outageSeconds();
    await using minio = await startMinio();
    await minio.createBucket("backups");
    const url = new URL(minio.endpoint);
    await using proxy = startFaultProxy({ hostname: url.hostname, port: Number(url.port) });
    const metricsPort = freePort();
    await using env = await startBackupEnv(outage, metricsPort, ["--backup-stall-timeout", "5s"]);
    await env.kube.apply(env.clusterManifest("test-pg"));
    await env.kube.apply(
      storageYaml("flaky", { server: minio }).replace(minio.endpoint, proxy.endpoint),
    );
    await env.waitPhase("backupstorage", "flaky", "Ready");
    const ns = await env.namespace("flaky");
    await env.kube.apply(databaseYaml(ns, "src", "flaky_src"));
    await env.waitPhase("database", "src", "Ready", { namespace: ns });
    assertEquals((await env.pg.psql(SEED, { database: "flaky_src" })).code, 0);

    const started = Date.now();
    const b1 = retriedBackup(env, ns, "b1");
    const failsWith = (mode: FaultMode, pattern: RegExp) =>
      retriesWith(b1, `the storage is ${mode}`, pattern);
    await proxy.set("error");
    await env.kube.apply(backupYaml(ns, "b1", "src", "flaky"));
    // A storage that answers 503 is unavailable (it answered), not unreachable.
    await failsWith(
      "error",
      // Named: which BackupStorage, and which call of the run failed first.
      /: Unavailable: BackupStorage "flaky": (head|list) failed: S3 bucket "backups" is unavailable: the storage answered HTTP 503\b/,
    );
    await proxy.set("reset");
    await failsWith("reset", /ECONNRESET|socket hang up|reset/i);
    await proxy.set("down");
    const down = Date.now();
    await failsWith("down", /ECONNREFUSED|refused/i);
    // Down for the whole outage; the Backup meanwhile retries on its capped schedule.
    while (Date.now() - down < outage * 1000) {
      await b1.get();
      await sleep(1000);
    }
    const faultSeconds = (Date.now() - started) / 1000;
    await proxy.set("pass");
    const back = Date.now();
    const done = await b1.completed();
    const b1Completed = Date.now();
    figure("dependencies: storage back until the Backup Completed", elapsed(back), "recovery");

    // The retries followed the capped schedule, and the SDK's own retries are bounded too.
    const { most } = b1.assertRuns(faultSeconds, "storage faults");
    const c = proxy.connections();
    const faulty = c.error + c.reset;
    figure("dependencies: connections the faulty storage got", JSON.stringify(c));
    assert(faulty <= 20 * most, `${faulty} connections for ${most} runs: a retry loop`);
    const text = await metrics(metricsPort);
    figure(
      "dependencies: dbtether_backup_failures_total",
      counterSum(text, "dbtether_backup_failures_total"),
    );

    // The one Completed Backup has one complete object, and nothing else is in the bucket.
    await assertOnlyDump(minio, done);
    assert(await running(env.program), "the program exited");

    await behindTheProxy({
      env,
      ns,
      minio,
      proxy,
      outage,
      before: [done.status!.path!],
      b1Completed,
    });
  },
);

/**
 * Waits until the Backup's retry message has `reason` and matches `pattern` (a new failed
 * run), failing at once if it Completed meanwhile.
 */
async function retriesWith(
  b: ReturnType<typeof retriedBackup>,
  what: string,
  pattern: RegExp,
  reason = "StorageFailed",
): Promise<string> {
  const found = await waitFor(`a Backup retrying while ${what}`, async () => {
    const o = await b.get();
    assert(o?.status?.phase !== "Completed", `Completed while ${what}`);
    const c = readyOf(o);
    return o?.status?.phase === "Pending" && c?.reason === reason && pattern.test(c.message) &&
      c.message;
  }, { timeoutMs: budget("recovery"), intervalMs: 500 }).catch(async (e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify((await b.get())?.status)}`);
  });
  figure(`dependencies: a Backup while ${what}`, found);
  return found;
}

/**
 * Waits until BackupStorage `name`'s Ready condition has status `ready`, which a Backup's
 * outcome makes the controller probe for within its 15 s gap, well before the 60 s or 5 min
 * scheduled probe; reports the time since `from` against the "react" budget.
 */
async function storageReadyIs(
  env: TestEnv,
  name: string,
  ready: boolean,
  after: string,
  from = Date.now(),
): Promise<{ status: string; reason: string; message: string }> {
  type Storage = {
    status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
  };
  const want = ready ? "True" : "False";
  const found = await waitFor(`BackupStorage ${name} Ready=${want} after ${after}`, async () => {
    const c = readyOf(await env.getJson<Storage>("backupstorage", name));
    return c?.status === want && c;
  }, { timeoutMs: budget("react"), intervalMs: 250 });
  figure(`dependencies: BackupStorage Ready=${want} after ${after}`, elapsed(from), "react");
  return found;
}

/**
 * The proxy (a load balancer, an S3 gateway) up and passing, MinIO behind it gone: killed
 * (the proxy accepts, its upstream connect fails, it closes the client), then hung (SIGSTOP:
 * the proxy's upstream connection is accepted by the kernel and never answered, so only
 * `--backup-stall-timeout` ends the run), then back. A new Backup retries, names the storage,
 * and Completes once with one complete object.
 */
async function behindTheProxy(o: {
  env: TestEnv;
  ns: string;
  minio: StorageServer;
  proxy: FaultProxy;
  outage: number;
  before: string[];
  /** When b1 was seen Completed. */
  b1Completed: number;
}): Promise<void> {
  const { env, ns, minio, proxy } = o;
  // b1's storage failures made the storage not Ready; b1's completion made it Ready again
  // (a probe at once, not the next scheduled one), so new Backups start on it.
  await storageReadyIs(env, "flaky", true, "b1 Completed", o.b1Completed);
  const passed = proxy.connections().pass;
  await minio.stop({ hard: true });
  const gone = Date.now();
  const b2 = retriedBackup(env, ns, "b2");
  await env.kube.apply(backupYaml(ns, "b2", "src", "flaky"));
  await retriesWith(
    b2,
    "MinIO is killed behind the passing proxy",
    /^Cannot use the backup storage: Unreachable: BackupStorage "flaky": head failed: S3 endpoint is unreachable: (ECONNRESET|EPIPE); retrying at /,
  );
  // The failure made the storage probe again: it says what b2 found, not its last success.
  const failed = await storageReadyIs(env, "flaky", false, "b2 failed on it", gone);
  assertEquals(failed.reason, "Unreachable", failed.message);
  // Reset while MinIO starts, so no run lands between its start and its SIGSTOP.
  await proxy.set("reset");
  await minio.start();
  minio.pause();
  await proxy.set("pass");
  await retriesWith(
    b2,
    "MinIO is hung behind the passing proxy",
    /^Cannot (use the backup storage|upload the backup): BackupStorage "flaky" stalled: .*\(--backup-stall-timeout 5s\); retrying at /,
    "StorageStalled",
  );
  while (Date.now() - gone < o.outage * 1000) {
    await b2.get();
    await sleep(1000);
  }
  const faultSeconds = (Date.now() - gone) / 1000;
  minio.resume();
  const back = Date.now();
  const done = await b2.completed();
  figure(
    "dependencies: MinIO back behind the proxy until the Backup Completed",
    elapsed(back),
    "recovery",
  );
  const { most } = b2.assertRuns(faultSeconds, "MinIO gone behind the proxy", 2);
  const tries = proxy.connections().pass - passed;
  figure("dependencies: connections the proxy passed with MinIO gone, and after", tries);
  assert(tries <= 20 * (most + 1), `${tries} connections for ${most + 1} runs: a retry loop`);
  const ready = await storageReadyIs(env, "flaky", true, "b2 Completed");
  figure("dependencies: BackupStorage flaky's Ready after the outage", JSON.stringify(ready));
  await assertOnlyDump(minio, done, o.before);
  assert(await running(env.program), "the program exited");
}

Deno.test(
  {
    name: "MinIO itself stopped mid-backup and started: unreachable, capped retries, one dump",
    ...opts,
  },
  async () => {
    // Down for several backup runs (each spends the S3 client's own retries), far less than
    // --backup-storage-retry-for: the Backup must wait, not fail.
    const outage = Math.max(outageSeconds(), 20);
    await using minio = await startMinio();
    await minio.createBucket("backups");
    const metricsPort = freePort();
    await using env = await startBackupEnv(outage, metricsPort);
    await env.kube.apply(env.clusterManifest("test-pg"));
    await env.kube.apply(storageYaml("minio", { server: minio }));
    await env.waitPhase("backupstorage", "minio", "Ready");
    const ns = await env.namespace("miniodown");
    await env.kube.apply(databaseYaml(ns, "src", "md_src"));
    await env.waitPhase("database", "src", "Ready", { namespace: ns });
    assertEquals((await env.pg.psql(SEED, { database: "md_src" })).code, 0);

    // pg_dump waits on a lock, so the Backup is in flight when MinIO is killed.
    const lock = await holdLock(env, "md_src", "orders");
    await env.kube.apply(backupYaml(ns, "b1", "src", "minio"));
    await dumpConnected(env, "md_src");
    await minio.stop({ hard: true });
    const down = Date.now();
    await lock.release();

    const b1 = retriedBackup(env, ns, "b1");
    const observe = async () => {
      const b = await b1.get();
      assert(b?.status?.phase !== "Completed", "b1 Completed while MinIO was down");
      assert(b?.status?.phase !== "Failed", `b1 Failed: ${readyOf(b)?.message}`);
      return b;
    };
    const waiting = await waitFor("b1 retrying while MinIO is down", async () => {
      const b = await observe();
      const c = readyOf(b);
      return b?.status?.phase === "Pending" && c?.reason === "StorageFailed" && c;
    }, { timeoutMs: budget("recovery"), intervalMs: 500 });
    figure("dependencies: a Backup while MinIO is stopped", waiting.message);
    figure("dependencies: MinIO killed until the Backup said so", elapsed(down), "react");
    // The precise reason: no connection to the endpoint, not a generic failure.
    assert(
      /^Cannot upload the backup: Unreachable: BackupStorage "minio": upload failed: S3 endpoint is unreachable: ECONNREFUSED; retrying at /
        .test(waiting.message),
      waiting.message,
    );
    while (Date.now() - down < outage * 1000) {
      await observe();
      await sleep(1000);
    }
    assert(await running(env.program), "the program exited while MinIO was down");
    const faultSeconds = (Date.now() - down) / 1000;
    await minio.start();
    const back = Date.now();
    const done = await b1.completed();
    figure("dependencies: MinIO back until the Backup Completed", elapsed(back), "recovery");

    // The runs followed the capped schedule: a few, not a loop.
    const { runs } = b1.assertRuns(faultSeconds, "MinIO stopped");
    const retries =
      env.program!.logs().split("\n").filter((l) =>
        l.includes("Backup upload failed; it will be retried")
      ).length;
    figure("dependencies: 'will be retried' log lines while MinIO was stopped", retries);
    assert(retries <= runs, `${retries} retry log lines for at most ${runs} runs`);
    figure(
      "dependencies: dbtether_backup_failures_total after MinIO's outage",
      counterSum(await metrics(metricsPort), "dbtether_backup_failures_total"),
    );

    // One complete dump, no partial object and no open multipart upload.
    const keys = await assertOnlyDump(minio, done);
    figure("dependencies: objects in the bucket after MinIO's outage", keys.join(", "));
    assert(await running(env.program), "the program exited");
  },
);

/** The identity in a server log line of a session of a replica's pool (`[dbtether@<id>/`). */
const identityOf = (line: string) => /\[dbtether@([^/\]]+)\//.exec(line)?.[1];

/**
 * Replicas with leader election, each restarted when it exits (as Kubernetes restarts a pod's
 * container), until `stop()`; every replica ever started, and each exit's code and last
 * error line.
 */
async function supervisedReplicas(env: TestEnv, n: number, lease: string[]) {
  const all: Replica[] = [];
  const slots: Replica[] = [];
  const exits: { code: number; why: string; at: number }[] = [];
  const start = async (slot: number) => {
    const r = await startReplica(env, { lease });
    all.push(r);
    slots[slot] = r;
  };
  for (let i = 0; i < n; i++) await start(i);
  let on = true;
  const loop = (async () => {
    while (on) {
      for (let i = 0; i < n && on; i++) {
        const r = slots[i]!;
        if (await running(r.program)) continue;
        const code = await r.program.process.status.then((s) => s.code);
        // The last error logged, or what the program printed when it gave up starting.
        const errors = r.program.logs().split("\n").filter((l) =>
          /"level":"error"/.test(l) || l.startsWith("dbtether: ")
        );
        const last = errors.at(-1) ?? "";
        const why = /"msg":"([^"]*)"/.exec(last)?.[1] ?? last.slice(0, 160);
        exits.push({ code, why, at: Date.now() });
        if (on) await start(i);
      }
      await sleep(500);
    }
  })();
  return {
    all,
    exits,
    async [Symbol.asyncDispose]() {
      on = false;
      await loop;
      for (const r of all) await r.program[Symbol.asyncDispose]();
    },
  };
}

Deno.test(
  {
    name: "the apiserver down past the startup timeout, two leader-elected replicas: one leader",
    ...opts,
  },
  async () => {
    const STARTUP_S = 5;
    // Longer than the lease, the renew deadline and several startup timeouts.
    const outage = Math.max(outageSeconds(), 4 * STARTUP_S);
    await using env = await startEnv({ pg: true });
    await env.kube.apply(env.clusterManifest("main"));
    const lease = [
      ...["--lease-duration", "8s", "--renew-deadline", "5s", "--retry-period", "1s"],
      ...["--startup-timeout", `${STARTUP_S}s`],
    ];
    await using set = await supervisedReplicas(env, 2, lease);
    const ns = await env.namespace("apilong");
    const first = await waitFor("a leader", async () => {
      const h = await holder(env);
      return set.all.some((r) => r.identity === h) && h;
    }, { timeoutMs: budget("failover") });
    await env.kube.apply(pairs(ns, { prefix: "a", cluster: "main", n: 2 }));
    await waitPairsReady(env, ns, { n: 2, since: Date.now() });

    await env.kube.stopApiserver();
    const down = Date.now();
    await sleep(outage * 1000);
    const exitsDown = set.exits.length;
    figure(
      `dependencies: replica exits in ${elapsed(down)} without the apiserver (startup timeout ` +
        `${STARTUP_S} s, 2 replicas)`,
      set.exits.map((e) => `${e.code} (${e.why})`).join("; ") || "none",
    );
    // Each exit is by design and says why: the leader gives up its lease at the renew
    // deadline; a restarted replica gives up after the startup timeout. Nothing else, and no
    // faster than the startup timeout allows (a crash loop would exit at once).
    for (const e of set.exits) {
      assertEquals(e.code, 1, `exit: ${e.why}`);
      assert(
        /leadership lost|Lost the leader lease|Cannot connect to Kubernetes/i.test(e.why),
        `an exit without its reason: ${e.why}`,
      );
    }
    const bound = 2 * (Math.ceil(outage / STARTUP_S) + 1);
    assert(exitsDown <= bound, `${exitsDown} exits in ${outage} s (bound ${bound})`);

    await env.kube.startApiserver();
    const back = Date.now();
    await env.kube.apply(pairs(ns, { prefix: "b", cluster: "main", n: 2 }));
    await waitFor("a new leader", async () => {
      const h = await holder(env);
      return h !== first && set.all.some((r) => r.identity === h);
    }, { timeoutMs: budget("failover"), intervalMs: 250 });
    figure("dependencies: apiserver back until another replica holds the lease", elapsed(back));
    await mergePatch(env, { kind: "databaseuser", namespace: ns, name: "a-000" }, {
      spec: { connectionLimit: 6 },
    });
    await waitPairsReady(env, ns, { n: 4, since: back });
    const s = await secretData(env, { namespace: ns, name: "a-000-credentials" });
    await waitFor(
      "the limit set after the outage applied",
      async () =>
        (await env.pg.superSql(
          `SELECT rolconnlimit FROM pg_roles WHERE rolname = '${s!.username}'`,
        )).trim() === "6",
      { timeoutMs: budget("react") },
    );
    figure(
      "dependencies: apiserver back until new work Ready (2 replicas, leader election)",
      elapsed(back),
      "failover",
    );
    const leader = await holder(env);
    assert(set.all.some((r) => r.identity === leader), `the lease holder ${leader} is ours`);
    const q = await secretData(env, { namespace: ns, name: "b-001-credentials" });
    assert(
      await runsAs(env.pg, { user: q!.username!, password: q!.password!, database: "b_001" }),
      "a user declared after the outage logs in",
    );

    // No two leaders: the server log's mutating statements come from one replica at a time,
    // each leader's in one run (none of an earlier leader after a later one's first).
    const sequence: string[] = [];
    for (const line of (await env.pg.readLog()).split("\n")) {
      const id = identityOf(line);
      if (!id || !MUTATING.test(line)) continue;
      if (sequence.at(-1) !== id) sequence.push(id);
    }
    figure("dependencies: leaders that sent mutating SQL, in order", sequence.length);
    assert(sequence.length >= 1, "no mutating statement tagged with a replica");
    assertEquals(
      new Set(sequence).size,
      sequence.length,
      `a replica sent mutating SQL again after another one did: ${sequence.join(" → ")}`,
    );
    // After the outage a replica may still give up the start it began during it; the leader
    // elected since keeps its lease.
    const later = set.exits.filter((e) => e.at >= back);
    figure("dependencies: replica exits after the apiserver was back", later.length);
    for (const e of later) assert(/Cannot connect to Kubernetes/.test(e.why), `exit: ${e.why}`);
    assertEquals(await holder(env), leader, "the leader kept its lease");
  },
);
