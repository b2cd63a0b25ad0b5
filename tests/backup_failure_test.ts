/**
 * Backup failures through the real program: a bad admin password, pg_dump's connection killed,
 * the program shut down mid-backup, and the S3 server (MinIO) killed mid-upload. Each ends with
 * a specific reason (or, for the shutdown and the storage outage, a single Completed after a
 * retry with the same key), no object at the final key and no incomplete multipart upload,
 * and the admin password in no log, Event or status.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ListMultipartUploadsCommand, S3Client } from "@aws-sdk/client-s3";
import { startEnv } from "./helpers/env.ts";
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
import { MINIO_PASSWORD, startMinio } from "./helpers/storage_servers.ts";

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
        timeoutMs: 120_000,
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
        await env.kube.kubectl([
          "patch",
          "secret",
          "test-pg-admin",
          "-n",
          "default",
          "--type",
          "merge",
          "-p",
          JSON.stringify({ stringData: { password: "wrong-password-123" } }),
        ], { check: true });
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
        }, { timeoutMs: 90_000 });
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

Deno.test({
  name: "Backup: MinIO killed mid-upload → retried, one Completed, no upload left",
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
  const s3 = new S3Client({
    endpoint: minio.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: {
      accessKeyId: minio.credentials["accessKeyId"]!,
      secretAccessKey: MINIO_PASSWORD,
    },
  });
  const uploads = async (key: string) =>
    ((await s3.send(new ListMultipartUploadsCommand({ Bucket: "backups", Prefix: key })))
      .Uploads ?? []).filter((u) => u.Key === key);
  const store = minio.makeStore({ bucket: "backups" });
  try {
    await env.kube.apply(backupYaml(ns, "cut", "big", "minio"));
    const running = await waitPhase(env, "backup", "cut", "Running", {
      namespace: ns,
      timeoutMs: 90_000,
    });
    const key = running.status!.path!;

    await t.step(
      "killed once a multipart upload is under way → Pending StorageFailed",
      async () => {
        await waitFor(
          "a multipart upload at the key",
          async () => (await uploads(key)).length > 0,
          {
            timeoutMs: 120_000,
            intervalMs: 50,
          },
        );
        await minio.stop({ hard: true });
        const b = await waitFor("the Backup to report the storage failure", async () => {
          const o = await env.getJson<Obj>("backup", "cut", ns);
          const ready = o?.status?.conditions?.find((c) => c.type === "Ready");
          return ready?.reason === "StorageFailed" && o?.status?.phase !== "Running"
            ? o
            : undefined;
        }, { timeoutMs: 120_000 });
        assertEquals(b.status?.phase, "Pending", JSON.stringify(b.status));
        assert(
          /will be retried with the same key/.test(b.status?.message ?? ""),
          String(b.status?.message),
        );
        await assertNoPasswordLeak(env);
        await minio.start();
      },
    );

    await t.step("the retry cleans up and completes with the same key", async () => {
      const done = await waitPhase(env, "backup", "cut", "Completed", {
        namespace: ns,
        timeoutMs: 180_000,
      });
      assertEquals(done.status?.path, key);
      assert((done.status?.attempts ?? 0) >= 2, `attempts ${done.status?.attempts}`);
      assertEquals(await uploads(key), [], "an incomplete multipart upload was left");
      assertEquals((await store.head(key))?.size, done.status?.sizeBytes);
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
    });

    await t.step("the admin password appears nowhere", () => assertNoPasswordLeak(env));
  } finally {
    s3.destroy();
    await store.close();
  }
});

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
