/**
 * Backup and Restore through the real `dbtether run` against a real apiserver, a real
 * PostgreSQL (admin not superuser) and real storage servers: a database with several tables,
 * sequences, a view and non-ASCII data is backed up through a Backup resource on each backend
 * (local, MinIO S3, fake-gcs-server, Azurite), restored into a new database through a Restore
 * resource, and both compare equal (row counts and a checksum of every table).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import {
  assertNoPasswordLeak,
  backupYaml,
  databaseYaml,
  dumpConnected,
  files,
  fingerprint,
  holdLock,
  type Obj,
  restoreYaml,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { freePort } from "./helpers/free_port.ts";
import { startAzurite, startFakeGcs, startMinio } from "./helpers/storage_servers.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function roundTrip(
  env: TestEnv,
  t: Deno.TestContext,
  o: { label: string; storage: string },
): Promise<void> {
  const ns = await env.namespace(`rt-${o.label}`);
  const src = `src_${o.label}`, dst = `dst_${o.label}`;
  await env.kube.apply(databaseYaml(ns, "source", src) + "---\n" + databaseYaml(ns, "copy", dst));
  await env.waitPhase("database", "source", "Ready", { namespace: ns });
  await env.waitPhase("database", "copy", "Ready", { namespace: ns });
  const seeded = await env.pg.psql(SEED, { database: src });
  assertEquals(seeded.code, 0, seeded.stderr);
  await waitPhase(env, "backupstorage", o.storage, "Ready");

  await env.kube.apply(backupYaml(ns, "b1", "source", o.storage));
  const b = await waitPhase(env, "backup", "b1", "Completed", {
    namespace: ns,
    timeoutMs: 120_000,
  });
  const uidPrefix = b.metadata.uid.replace(/-/g, "").slice(0, 8);
  assert(b.status?.path?.startsWith(`test-pg/${src}/`), String(b.status?.path));
  assert(b.status?.path?.endsWith(`-${uidPrefix}.sql.gz`), String(b.status?.path));
  assert((b.status?.sizeBytes ?? 0) > 1000, "a non-trivial dump");
  assertEquals(b.status?.attempts, 1);
  const cols = await env.kube.kubectl(["get", "backup", "b1", "-n", ns]);
  assert(/DATABASE\s+PHASE\s+SIZE\s+DURATION\s+AGE/.test(cols.stdout), cols.stdout);
  assert(/source\s+Completed\s+\d+(\.\d)? KiB\s+\S+/.test(cols.stdout), cols.stdout);

  await env.kube.apply(restoreYaml(ns, "r1", "    backupRef:\n      name: b1", "copy"));
  const r = await waitPhase(env, "restore", "r1", "Completed", {
    namespace: ns,
    timeoutMs: 120_000,
  });
  assertEquals(r.status?.sha256, b.status?.sha256);
  assertEquals(await fingerprint(env, dst), await fingerprint(env, src));
  await t.step(`${o.label}: Events Started and Completed`, async () => {
    const ev = await env.kube.kubectl(["get", "events", "-n", ns, "-o", "json"]);
    const reasons =
      (JSON.parse(ev.stdout).items as { reason: string; involvedObject: { kind: string } }[])
        .map((e) => `${e.involvedObject.kind}/${e.reason}`);
    for (const want of ["Backup/Started", "Backup/Completed", "Restore/Completed"]) {
      assert(reasons.includes(want), `missing Event ${want} in ${reasons.join(", ")}`);
    }
  });
}

Deno.test({ name: "Backup and Restore round trip on every backend", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await env.kube.apply(env.clusterManifest("test-pg"));
  const localDir = await Deno.makeTempDir({ prefix: "dbtether-backups-" });
  try {
    await t.step("local", async (t) => {
      await env.kube.apply(storageYaml("local", { localPath: localDir }));
      await roundTrip(env, t, { label: "local", storage: "local" });
      const files: string[] = [];
      for await (const e of Deno.readDir(`${localDir}/test-pg/src_local`)) {
        if (!e.name.startsWith(".")) files.push(e.name);
      }
      assertEquals(files.length, 2, files.join(", "));
      assert(files.some((f) => f.endsWith(".sql.gz.manifest.json")));
    });
    await t.step("s3 (MinIO)", async (t) => {
      await using minio = await startMinio();
      await minio.createBucket("backups");
      const y = storageYaml("minio", { server: minio });
      await env.kube.apply(y).catch((e) => {
        throw new Error(`${e.message}\n${y}`);
      });
      await roundTrip(env, t, { label: "s3", storage: "minio" });
    });
    await t.step("gcs (fake-gcs-server)", async (t) => {
      await using gcs = await startFakeGcs();
      await gcs.createBucket("backups");
      await env.kube.apply(storageYaml("gcs", { server: gcs }));
      await roundTrip(env, t, { label: "gcs", storage: "gcs" });
    });
    await t.step("azure (Azurite)", async (t) => {
      await using az = await startAzurite();
      await az.createBucket("backups");
      await env.kube.apply(storageYaml("azure", { server: az }));
      await roundTrip(env, t, { label: "azure", storage: "azure" });
    });
    await t.step("the admin password appears nowhere", () => assertNoPasswordLeak(env));
  } finally {
    await Deno.remove(localDir, { recursive: true }).catch(() => {});
  }
});

Deno.test({ name: "BackupStorage probe reasons", ...opts }, async (t) => {
  await using env = await startEnv({ program: true });
  await using minio = await startMinio();
  await minio.createBucket("backups");
  const reason = (o: Obj | undefined) =>
    o?.status?.conditions?.find((c) => c.type === "Ready")?.reason;
  await t.step("missing bucket → BucketNotFound", async () => {
    await env.kube.apply(storageYaml("nobucket", { server: minio, bucket: "no-such-bucket" }));
    assertEquals(
      reason(await waitPhase(env, "backupstorage", "nobucket", "Failed")),
      "BucketNotFound",
    );
  });
  await t.step("wrong key → AccessDenied, fixed Secret → Ready", async () => {
    await env.kube.apply(
      storageYaml("wrongkey", { server: minio }).replace(
        `secretAccessKey: "${minio.credentials.secretAccessKey}"`,
        'secretAccessKey: "not-the-key"',
      ),
    );
    assertEquals(
      reason(await waitPhase(env, "backupstorage", "wrongkey", "Failed")),
      "AccessDenied",
    );
    await env.kube.apply(storageYaml("wrongkey", { server: minio }));
    await waitPhase(env, "backupstorage", "wrongkey", "Ready");
    const cols = await env.kube.kubectl(["get", "bs", "wrongkey"]);
    assert(
      /PROVIDER\s+PHASE\s+AGE/.test(cols.stdout) && /s3\s+Ready/.test(cols.stdout),
      cols.stdout,
    );
  });
  await t.step("missing credentials Secret → CredentialsMissing", async () => {
    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: BackupStorage
metadata:
  name: nosecret
spec:
  s3:
    bucket: backups
    endpoint: ${minio.endpoint}
    forcePathStyle: true
    region: us-east-1
  credentialsSecretRef:
    name: absent
    namespace: default
`);
    assertEquals(
      reason(await waitPhase(env, "backupstorage", "nosecret", "Failed")),
      "CredentialsMissing",
    );
  });
});

Deno.test({ name: "Backup ttlAfterCompletion and metrics", ...opts }, async (t) => {
  const port = freePort();
  await using env = await startEnv({
    pg: true,
    program: true,
    programArgs: ["--metrics-bind-address", `127.0.0.1:${port}`],
  });
  await env.kube.apply(env.clusterManifest("test-pg"));
  const dir = await Deno.makeTempDir({ prefix: "dbtether-ttl-" });
  try {
    await env.kube.apply(storageYaml("local", { localPath: dir }));
    const ns = await env.namespace("bkp-ttl");
    await env.kube.apply(databaseYaml(ns, "app", "ttl_app"));
    await env.waitPhase("database", "app", "Ready", { namespace: ns });
    assertEquals((await env.pg.psql(SEED, { database: "ttl_app" })).code, 0);
    const keyDir = `${dir}/test-pg/ttl_app`;
    let completed: Obj | undefined;

    await t.step("ttlAfterCompletion deletes the Backup; the dump stays", async () => {
      await env.kube.apply(backupYaml(ns, "short", "app", "local", "  ttlAfterCompletion: 6s\n"));
      completed = await waitPhase(env, "backup", "short", "Completed", {
        namespace: ns,
        timeoutMs: 90_000,
      });
      const at = Date.now();
      await waitFor(
        "the Backup to be deleted",
        async () => (await env.getJson("backup", "short", ns)) === undefined,
        { timeoutMs: 60_000 },
      );
      assert(Date.now() - at > 2_000, "deleted well before its TTL");
      const name = completed.status!.path!.split("/").pop()!;
      assertEquals(files(keyDir).sort(), [name, `${name}.manifest.json`]);
    });

    await t.step("a failed backup for the failures metric", async () => {
      const lock = await holdLock(env, "ttl_app", "orders");
      await env.kube.apply(backupYaml(ns, "killed", "app", "local"));
      await waitPhase(env, "backup", "killed", "Running", { namespace: ns });
      await dumpConnected(env, "ttl_app");
      await env.pg.superSql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
          "WHERE datname = 'ttl_app' AND application_name = 'dbtether-backup'",
      );
      await waitPhase(env, "backup", "killed", "Failed", { namespace: ns });
      await lock.release();
    });

    await t.step("/metrics: duration, bytes, last success per database, failures", async () => {
      const text = await waitFor("the backup metrics", async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        const body = await res.text();
        return res.ok && body.includes("dbtether_backup_failures_total{") ? body : undefined;
      });
      const value = (series: string) => {
        const line = text.split("\n").find((l) => l.startsWith(`${series} `));
        assert(line, `no ${series} in /metrics`);
        return Number(line.split(" ")[1]);
      };
      const labels = `{namespace="${ns}",database="app"}`;
      assertEquals(value(`dbtether_backup_duration_seconds_count${labels}`), 1);
      assertEquals(value(`dbtether_backup_bytes_total${labels}`), completed?.status?.sizeBytes);
      assertEquals(value(`dbtether_backup_size_bytes${labels}`), completed?.status?.sizeBytes);
      const last = value(`dbtether_backup_last_success_timestamp_seconds${labels}`);
      assert(Math.abs(last - Date.now() / 1000) < 300, `last success ${last}`);
      assertEquals(value('dbtether_backup_failures_total{reason="DumpFailed"}'), 1);
    });

    await t.step("the admin password appears nowhere", () => assertNoPasswordLeak(env));
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
