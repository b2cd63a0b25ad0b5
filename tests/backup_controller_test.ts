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
  fingerprint,
  type Obj,
  restoreYaml,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { startAzurite, startFakeGcs, startMinio } from "./helpers/storage_servers.ts";

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
