/**
 * The runtime needs no writable path, so the image runs with a read-only root filesystem: the
 * program, with every file write denied (the binary's permissions without `--allow-write`,
 * and no writable TMPDIR or HOME), connects a DBCluster, creates a Database and a DatabaseUser with
 * its Secret, backs the database up to S3 (MinIO) and restores it into a second Database, all
 * to Ready/Completed, and the restored data equals the source. (A `local` BackupStorage and the
 * CA file of a DBCluster with caSecretRef are the documented exceptions.)
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { budget } from "./helpers/timeouts.ts";
import {
  backupThenRestore,
  backupYaml,
  databaseYaml,
  fingerprint,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { startEnv, testRunArgs } from "./helpers/env.ts";
import { startProgram } from "./helpers/program.ts";
import { startMinio } from "./helpers/storage_servers.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({ name: "the program runs with every file write denied", ...opts }, async () => {
  await using env = await startEnv({ pg: true });
  await using minio = await startMinio();
  await minio.createBucket("backups");
  await using program = await startProgram(testRunArgs(env.kube.kubeconfigPath), {
    withoutPermissions: ["--allow-write"],
    env: { TMPDIR: "/nonexistent", HOME: "/nonexistent" },
  });
  const ns = await env.namespace("readonly");
  await env.kube.apply(env.clusterManifest("test-pg"));
  await env.kube.apply(databaseYaml(ns, "src", "readonly_src"));
  await env.kube.apply(databaseYaml(ns, "copy", "readonly_copy"));
  await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: app, namespace: ${ns} }
spec: { databaseRef: { name: src }, privileges: readwrite }
`);
  await waitPhase(env, "databaseuser", "app", "Ready", { namespace: ns });
  await waitPhase(env, "database", "copy", "Ready", { namespace: ns });
  const seeded = await env.pg.psql(SEED, { database: "readonly_src" });
  assertEquals(seeded.code, 0, seeded.stderr);
  await env.kube.apply(storageYaml("readonly-s3", { server: minio, secretNs: ns }));
  await backupThenRestore(env, {
    namespace: ns,
    source: "src",
    target: "copy",
    storage: "readonly-s3",
  });
  assertEquals(await fingerprint(env, "readonly_copy"), await fingerprint(env, "readonly_src"));
  assertEquals(program.logs().match(/NotCapable|write access|PermissionDenied/gi) ?? [], []);

  // The control: writes really are denied, so a backup to a local directory cannot be written.
  const dir = await Deno.makeTempDir({ prefix: "dbtether-readonly-" });
  await env.kube.apply(storageYaml("readonly-local", { localPath: dir }));
  await env.kube.apply(backupYaml(ns, "b2", "src", "readonly-local"));
  const refused = await waitFor("backup b2 to report the denied write", async () => {
    const b = await env.getJson<{ status?: { message?: string } }>("backup", "b2", ns);
    return /NotCapable/.test(b?.status?.message ?? "") ? b : undefined;
  });
  assertMatch(refused.status!.message!, /Local storage failed/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test(
  { name: "the program can start no program but the PostgreSQL client tools", ...opts },
  async () => {
    // A directory of "client tools" that are shell scripts leaving a mark: with the binary's
    // --allow-run list, pointing --pg-tools-dir at them must not run them.
    await using env = await startEnv({ pg: true });
    const evil = await Deno.makeTempDir({ prefix: "dbtether-evil-tools-" });
    const mark = `${evil}/ran`;
    for (const tool of ["pg_dump", "pg_restore", "psql"]) {
      await Deno.writeTextFile(
        `${evil}/${tool}`,
        `#!/bin/sh\ntouch ${mark}\necho "${tool} (PostgreSQL) 18.6"\n`,
        { mode: 0o755 },
      );
    }
    const args = testRunArgs(env.kube.kubeconfigPath).filter((a, i, all) =>
      a !== "--pg-tools-dir" && all[i - 1] !== "--pg-tools-dir"
    );
    await using program = await startProgram([...args, "--pg-tools-dir", evil]);
    const ns = await env.namespace("tools");
    const dir = await Deno.makeTempDir({ prefix: "dbtether-tools-backups-" });
    await env.kube.apply(env.clusterManifest("test-pg"));
    await env.kube.apply(databaseYaml(ns, "src", "tools_src"));
    await env.kube.apply(storageYaml("tools-local", { localPath: dir }));
    await waitPhase(env, "database", "src", "Ready", { namespace: ns });
    await env.kube.apply(backupYaml(ns, "b1", "src", "tools-local"));
    const failed = await waitFor("the Backup to say why it cannot run the tools", async () => {
      const b = await env.getJson<{ status?: { phase?: string; message?: string } }>(
        "backup",
        "b1",
        ns,
      );
      return b?.status?.message && b.status.phase !== "Running" ? b : undefined;
    }, { timeoutMs: budget("backup") });
    assert(failed.status?.phase !== "Completed", JSON.stringify(failed.status));
    assertEquals(await exists(mark), false, "a script posing as pg_dump ran");
    // The scripts were never started (Deno refused them), and the reason says so.
    assertMatch(
      failed.status!.message!,
      /no client tools of major version \d+ or newer in .*found: none; not allowed to run \S+\/pg_dump/,
    );
    assertEquals(program.logs().includes(mark), false);
    await Deno.remove(evil, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  },
);

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
