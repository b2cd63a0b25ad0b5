/**
 * Object storage over https, through the real `dbtether run` with the binary's permission
 * flags (scripts/permissions.sh): MinIO serves TLS with a certificate of a private CA, which
 * the program trusts through NODE_EXTRA_CA_CERTS, as docs/operations.md tells users to set it.
 * A Backup's object is read back over https and checked against its status, and restores equal
 * to the source. Without the CA, the BackupStorage says the certificate is not trusted and what
 * to do. Session 27 found node:https refused every call under `--allow-sys=osRelease,hostname`
 * (it needs the sys permission "ca"): this is the test that run would fail.
 */
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import {
  assertNoPasswordLeak,
  backupThenRestore,
  databaseYaml,
  fingerprint,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { readyOf, readyReason, waitReason } from "./helpers/fixtures.ts";
import { makeTestTls } from "./helpers/identity_endpoints.ts";
import { MINIO_PASSWORD, minioClient, startMinio } from "./helpers/storage_servers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function sha256Of(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new Uint8Array(bytes));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({ name: "Backup and Restore on S3 over https with a private CA", ...opts }, async (t) => {
  await using tls = await makeTestTls();
  await using minio = await startMinio({ tls });
  assert(minio.endpoint.startsWith("https://127.0.0.1:"), minio.endpoint);
  await minio.createBucket("backups");
  // The program starts below, once per step, with and without the CA.
  await using env = await startEnv({ pg: true });
  const trusting = await env.startProgram([], { NODE_EXTRA_CA_CERTS: tls.caFile });
  await env.kube.apply(env.clusterManifest("test-pg"));
  await env.kube.apply(storageYaml("minio-tls", { server: minio }));
  const ns = await env.namespace("s3-tls");

  await t.step("the BackupStorage on https MinIO becomes Ready", async () => {
    const storage = await waitPhase(env, "backupstorage", "minio-tls", "Ready");
    assertEquals(readyReason(storage), "Ready");
  });

  await t.step("a Backup over https completes, is stored as stated, and restores", async () => {
    await env.kube.apply(
      databaseYaml(ns, "source", "src_tls") + "---\n" +
        databaseYaml(ns, "copy", "dst_tls"),
    );
    await env.waitPhase("database", "source", "Ready", { namespace: ns });
    await env.waitPhase("database", "copy", "Ready", { namespace: ns });
    const seeded = await env.pg.psql(SEED, { database: "src_tls" });
    assertEquals(seeded.code, 0, seeded.stderr);

    const { backup, restore } = await backupThenRestore(env, {
      namespace: ns,
      source: "source",
      target: "copy",
      storage: "minio-tls",
    });
    const key = backup.status?.path;
    assert(key?.startsWith("test-pg/src_tls/"), String(key));
    // Read back over https by a client of its own that trusts the CA, not through the program.
    const client = await minioClient(minio.endpoint, tls.caPem);
    try {
      const res = await client.send(new GetObjectCommand({ Bucket: "backups", Key: key }));
      const bytes = await res.Body!.transformToByteArray();
      assert(bytes.length > 1000, `a non-trivial dump (${bytes.length} bytes)`);
      assertEquals(bytes.length, backup.status?.sizeBytes);
      assertEquals(await sha256Of(bytes), backup.status?.sha256);
    } finally {
      client.destroy();
    }
    assertEquals(restore.status?.sha256, backup.status?.sha256);
    assertEquals(await fingerprint(env, "dst_tls"), await fingerprint(env, "src_tls"));
  });

  await env.killProgram();
  await t.step("without the CA, the BackupStorage says the certificate is untrusted", async () => {
    await env.startProgram();
    const failed = await waitReason(env, {
      kind: "backupstorage",
      namespace: "",
      name: "minio-tls",
      reason: "Unreachable",
    });
    const ready = readyOf(failed);
    assertEquals(ready?.status, "False");
    const message = ready?.message ?? "";
    for (
      const words of [
        "TLS certificate is not trusted",
        "NODE_EXTRA_CA_CERTS",
        "docs/operations.md",
      ]
    ) {
      assert(message.includes(words), `"${words}" is not in the message: ${message}`);
    }
    assertEquals(failed.status?.message, message);
  });

  await t.step("no secret in the logs, statuses or Events", async () => {
    await assertNoPasswordLeak(env, { logs: [trusting.logs()], secrets: [MINIO_PASSWORD] });
  });
});
