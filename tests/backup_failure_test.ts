/**
 * Backup failures through the real program: a bad admin password, pg_dump's connection killed,
 * the program shut down mid-backup, and the S3 server (MinIO) killed mid-upload and kept down
 * for 40 s (retried until it is back) or past --backup-storage-retry-for (Failed, naming the
 * storage error). Each ends with a specific reason (or, for the shutdown and the outage, a
 * single Completed after a retry with the same key), no object at the final key and no
 * incomplete multipart upload, and the admin password in no log, Event or status.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { mergePatch, readyReason } from "./helpers/fixtures.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";
import {
  assertNoPasswordLeak,
  backupYaml,
  databaseYaml,
  dumpConnected,
  files,
  holdLock,
  type Obj,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { openUploads, startMinio } from "./helpers/storage_servers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({ name: "Backup failures end with a reason and leave no object", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await env.kube.apply(env.clusterManifest("test-pg"));
  const dir = await Deno.makeTempDir({ prefix: "dbtether-fail-" });
  try {
    await env.kube.apply(storageYaml("local", { localPath: dir }));
    const ns = await env.namespace("bkp-fail");
    await env.kube.apply(databaseYaml(ns, "app", "fail_app"));
    await env.waitPhase("database", "app", "Ready", { namespace: ns });
    const seeded = await env.pg.psql(SEED, { database: "fail_app" });
    assertEquals(seeded.code, 0, seeded.stderr);
    const keyDir = `${dir}/test-pg/fail_app`;
    // Logs of programs stopped along the way, for the no-leak assertions.
    const stoppedLogs: string[] = [];

    await t.step(
      "pg_dump's connection killed mid-backup → Failed DumpFailed, no object",
      async () => {
        const lock = await holdLock(env, "fail_app", "orders");
        await env.kube.apply(backupYaml(ns, "killed", "app", "local"));
        await waitPhase(env, "backup", "killed", "Running", { namespace: ns });
        await dumpConnected(env, "fail_app");
        await env.pg.superSql(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
            "WHERE datname = 'fail_app' AND application_name = 'dbtether-backup'",
        );
        const b = await waitPhase(env, "backup", "killed", "Failed", { namespace: ns });
        await lock.release();
        assertEquals(b.status?.conditions?.find((c) => c.type === "Ready")?.reason, "DumpFailed");
        assert(/terminat/i.test(b.status?.message ?? ""), String(b.status?.message));
        assertEquals(files(keyDir), []);
        await assertNoPasswordLeak(env);
      },
    );

    await t.step("shut down mid-backup → retried with the same key, one Completed", async () => {
      const lock = await holdLock(env, "fail_app", "orders");
      await env.kube.apply(backupYaml(ns, "interrupted", "app", "local"));
      const running = await waitPhase(env, "backup", "interrupted", "Running", { namespace: ns });
      await dumpConnected(env, "fail_app");
      const stopped = env.program!;
      assertEquals(await env.killProgram("SIGTERM"), 0);
      stoppedLogs.push(stopped.logs());
      await assertNoPasswordLeak(env, { logs: stoppedLogs });
      const after = await env.getJson<Obj>("backup", "interrupted", ns);
      assertEquals(after?.status?.phase, "Pending");
      assertEquals(after?.status?.attempts, 1);
      assertEquals(files(keyDir), []);
      await lock.release();
      await env.startProgram();
      const done = await waitPhase(env, "backup", "interrupted", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
      });
      assertEquals(done.status?.attempts, 2);
      assertEquals(done.status?.path, running.status?.path);
      const ev = await env.kube.kubectl(["get", "events", "-n", ns, "-o", "json"]);
      const completed = (JSON.parse(ev.stdout).items as {
        reason: string;
        count?: number;
        involvedObject: { name: string };
      }[]).filter((e) => e.involvedObject.name === "interrupted" && e.reason === "Completed");
      assertEquals(completed.reduce((n, e) => n + (e.count ?? 1), 0), 1);
      await assertNoPasswordLeak(env, { logs: stoppedLogs });
    });

    await t.step(
      "bad admin password → Failed DumpFailed (or waiting on the Database), no object",
      async () => {
        await mergePatch(env, { kind: "secret", namespace: "default", name: "test-pg-admin" }, {
          stringData: { password: "wrong-password-123" },
        });
        await env.kube.apply(backupYaml(ns, "badpw", "app", "local"));
        // Whoever notices first: pg_dump fails to log in (Failed, DumpFailed), or the Database
        // controller takes the Database out of Ready and the Backup waits, saying why.
        const b = await waitFor("the Backup to report the authentication failure", async () => {
          const o = await env.getJson<Obj>("backup", "badpw", ns);
          const phase = o?.status?.phase;
          return (phase === "Failed" || phase === "Pending") &&
              /authentication failed/i.test(o?.status?.message ?? "")
            ? o
            : undefined;
        }, { timeoutMs: budget("backup") });
        const reason = b.status?.conditions?.find((c) => c.type === "Ready")?.reason;
        assertEquals(reason, b.status?.phase === "Failed" ? "DumpFailed" : "DatabaseNotReady");
        assert(!(b.status?.message ?? "").includes("wrong-password-123"));
        assertEquals(files(keyDir).filter((f) => f.includes(b.metadata.uid.slice(0, 8))), []);
        await assertNoPasswordLeak(env, { logs: stoppedLogs, secrets: ["wrong-password-123"] });
      },
    );

    await t.step(
      "the admin password appears nowhere",
      () => assertNoPasswordLeak(env, { logs: stoppedLogs }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/** About 80 MB of poorly compressible rows: a dump whose upload spans several 16 MiB parts. */
const BIG = `CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v
  FROM generate_series(1, 1100000) g;`;

/** The status fields of a Backup that retries. */
type Retried = Obj & {
  status?: Obj["status"] & {
    interruptions?: number;
    storageFailures?: number;
    nextRetryAt?: string;
  };
};

Deno.test({
  name: "Backup: a storage outage is retried for a duration, not a count, and named when final",
  ...opts,
}, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await using minio = await startMinio();
  await minio.createBucket("backups");
  await env.kube.apply(env.clusterManifest("test-pg"));
  await env.kube.apply(storageYaml("minio", { server: minio }));
  await waitPhase(env, "backupstorage", "minio", "Ready");
  const ns = await env.namespace("bkp-s3");
  await env.kube.apply(databaseYaml(ns, "big", "s3_big"));
  await env.waitPhase("database", "big", "Ready", { namespace: ns });
  const seeded = await env.pg.psql(SEED + BIG, { database: "s3_big" });
  assertEquals(seeded.code, 0, seeded.stderr);
  const uploads = async (key: string) =>
    (await openUploads(minio, { bucket: "backups", prefix: key })).filter((u) => u.Key === key);
  const store = minio.makeStore({ bucket: "backups" });
  /** Starts a Backup and kills MinIO once its multipart upload is under way; returns the key. */
  const cutMidUpload = async (name: string) => {
    await env.kube.apply(backupYaml(ns, name, "big", "minio"));
    const running = await waitPhase(env, "backup", name, "Running", {
      namespace: ns,
      timeoutMs: budget("backup"),
    });
    const key = running.status!.path!;
    await waitFor("a multipart upload at the key", async () => (await uploads(key)).length > 0, {
      timeoutMs: budget("backup"),
      intervalMs: 50,
    });
    await minio.stop({ hard: true });
    return key;
  };
  try {
    await t.step(
      "MinIO down mid-upload for 40 s → retried until it is back, one Completed",
      async () => {
        const key = await cutMidUpload("cut");
        const downAt = Date.now();
        const retrying = await waitFor("the Backup to wait for its next retry", async () => {
          const o = await env.getJson<Retried>("backup", "cut", ns);
          return o?.status?.phase === "Pending" && readyReason(o) === "StorageFailed" &&
              o.status.nextRetryAt
            ? o
            : undefined;
        });
        assert(
          /Unreachable.*; retrying at \S+ \(the storage has been failing for/.test(
            retrying.status?.message ?? "",
          ),
          String(retrying.status?.message),
        );
        // Well past what three attempts with 10 s and 20 s of backoff covered before.
        while (Date.now() - downAt < 40_000) {
          const o = await env.getJson<Retried>("backup", "cut", ns);
          assert(o?.status?.phase !== "Failed", `Failed during the outage: ${o?.status?.message}`);
          await new Promise((r) => setTimeout(r, 1_000));
        }
        await minio.start();
        const done = await waitPhase(env, "backup", "cut", "Completed", {
          namespace: ns,
          timeoutMs: budget("recovery"),
        }) as Retried;
        assertEquals(done.status?.path, key);
        assert((done.status?.attempts ?? 0) >= 2, `attempts ${done.status?.attempts}`);
        assertEquals(done.status?.interruptions ?? 0, 0, "storage failures are not interruptions");
        assertEquals(done.status?.nextRetryAt, undefined);
        assertEquals(await uploads(key), [], "an incomplete multipart upload was left");
        assertEquals(await sha256(await store.get(key)), done.status?.sha256);
        const ev = await env.kube.kubectl(["get", "events", "-n", ns, "-o", "json"]);
        const reasons = (JSON.parse(ev.stdout).items as {
          reason: string;
          count?: number;
          involvedObject: { name: string };
        }[]).filter((e) => e.involvedObject.name === "cut");
        const count = (r: string) =>
          reasons.filter((e) => e.reason === r).reduce((n, e) => n + (e.count ?? 1), 0);
        assertEquals(count("Completed"), 1);
        assert(count("Retrying") >= 1, "a Retrying Event");
        await assertNoPasswordLeak(env);
      },
    );

    await t.step(
      "MinIO down past --backup-storage-retry-for → Failed StorageFailed, saying so",
      async () => {
        const stopped = env.program!;
        assertEquals(await env.killProgram("SIGTERM"), 0);
        await env.startProgram(["--backup-storage-retry-for", "20s"]);
        const key = await cutMidUpload("down");
        const failed = await waitPhase(env, "backup", "down", "Failed", {
          namespace: ns,
          timeoutMs: budget("recovery"),
        }) as Retried;
        assertEquals(readyReason(failed), "StorageFailed", JSON.stringify(failed.status));
        assert(
          /Unreachable.*; gave up after retrying for \S+ \(\d+ failed runs; --backup-storage-retry-for 20s\)/
            .test(failed.status?.message ?? ""),
          String(failed.status?.message),
        );
        assert(!/interrupted/i.test(failed.status?.message ?? ""), "not blamed on interruptions");
        assertEquals(failed.status?.interruptions ?? 0, 0);
        assert((failed.status?.storageFailures ?? 0) >= 2, `${failed.status?.storageFailures}`);
        await minio.start();
        assertEquals(await store.head(key), undefined, "an object at the final key");
        await assertNoPasswordLeak(env, { logs: [stopped.logs()] });
      },
    );
  } finally {
    await store.close();
    if (!minio.running()) await minio.start().catch(() => {});
  }
});

async function sha256(stream: ReadableStream<Uint8Array>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await new Response(stream).arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name: "Backup: --backup-shutdown-grace lets a running dump finish on SIGTERM",
  ...opts,
}, async () => {
  await using env = await startEnv({
    pg: true,
    programArgs: ["--backup-shutdown-grace", "20s", "--graceful-shutdown-timeout", "30s"],
  });
  await env.kube.apply(env.clusterManifest("test-pg"));
  await env.startProgram();
  const dir = await Deno.makeTempDir({ prefix: "dbtether-grace-" });
  try {
    await env.kube.apply(storageYaml("local", { localPath: dir }));
    const ns = await env.namespace("bkp-grace");
    await env.kube.apply(databaseYaml(ns, "app", "grace_app"));
    await env.waitPhase("database", "app", "Ready", { namespace: ns });
    assertEquals((await env.pg.psql(SEED, { database: "grace_app" })).code, 0);
    const lock = await holdLock(env, "grace_app", "orders");
    await env.kube.apply(backupYaml(ns, "graceful", "app", "local"));
    await waitPhase(env, "backup", "graceful", "Running", { namespace: ns });
    await dumpConnected(env, "grace_app");
    const program = env.program!;
    const exited = program.stop("SIGTERM");
    // The dump is still blocked on the lock when the signal arrives; it finishes inside the grace.
    await new Promise((r) => setTimeout(r, 1500));
    await lock.release();
    assertEquals(await exited, 0);
    const b = await env.getJson<Obj>("backup", "graceful", ns);
    assertEquals(b?.status?.phase, "Completed", JSON.stringify(b?.status));
    assertEquals(b?.status?.attempts, 1);
    assert(files(`${dir}/test-pg/grace_app`).length >= 1, "the dump is in storage");
    await assertNoPasswordLeak(env, { logs: [program.logs()] });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
