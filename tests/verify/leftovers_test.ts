/**
 * A Backup that gives up leaves nothing in the storage (issue 13; the crash test once found a
 * given-up Backup's object left in the bucket). The controller is SIGKILLed in the middle of a
 * multipart upload, so nothing in the process can clean up; with `--backup-max-attempts 1` the
 * next leader fails the Backup (RetriesExhausted) without another run. The cleanup of the
 * Failed Backup must then abort the multipart upload the killed run left in MinIO.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { databaseYaml, storageYaml } from "../helpers/backup.ts";
import { startEnv } from "../helpers/env.ts";
import { type Cond } from "../helpers/fixtures.ts";
import { openUploads, startMinio } from "../helpers/storage_servers.ts";
import { budget } from "../helpers/timeouts.ts";
import { waitFor } from "../helpers/wait.ts";
import { startHangingProxy } from "./hang.ts";
import { figure } from "./workload.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** About 10 MiB gzipped (hex digests barely compress): two parts of 5 MiB at least. */
const BIG = `CREATE TABLE noise (id int PRIMARY KEY, a text, b text);
INSERT INTO noise SELECT g, md5(g::text || 'a'), md5(g::text || 'b') || md5(g::text || 'c')
  FROM generate_series(1, 250000) g;`;

type BackupObj = {
  status?: {
    phase?: string;
    path?: string;
    leftoversRemovedAt?: string;
    conditions?: Cond[];
  };
};

Deno.test(
  { name: "a Backup given up after a SIGKILL mid-upload leaves no multipart upload", ...opts },
  async () => {
    await using minio = await startMinio();
    await minio.createBucket("backups");
    const url = new URL(minio.endpoint);
    await using proxy = startHangingProxy({ hostname: url.hostname, port: Number(url.port) });
    await using env = await startEnv({
      pg: true,
      program: true,
      programArgs: ["--backup-max-attempts", "1"],
    });
    await env.kube.apply(env.clusterManifest("pg"));
    // The operator reaches MinIO through the proxy, the test directly.
    await env.kube.apply(
      storageYaml("store", { server: minio }).replace(minio.endpoint, proxy.endpoint),
    );
    const ns = await env.namespace("leftovers");
    await env.kube.apply(databaseYaml(ns, "src", "left_src").replace("test-pg", "pg"));
    await env.waitPhase("database", "src", "Ready", { namespace: ns });
    assertEquals((await env.pg.psql(BIG, { database: "left_src" })).code, 0);
    await env.waitPhase("backupstorage", "store", "Ready");

    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: Backup
metadata: { name: cut, namespace: ${ns} }
spec:
  databaseRef: { name: src }
  storageRef: { name: store }
`);
    // Once the multipart upload exists, the parts after the one in flight never arrive.
    const upload = await waitFor("a multipart upload in MinIO", async () => {
      const open = await openUploads(minio, { bucket: "backups" });
      return open.length ? open : undefined;
    }, { timeoutMs: budget("backup"), intervalMs: 100 });
    proxy.hangUploads(1024 * 1024);
    await env.waitPhase("backup", "cut", "Running", { namespace: ns });
    await env.restartProgram("SIGKILL");
    figure("leftovers: multipart uploads open after the SIGKILL", upload.length);

    await env.waitPhase("backup", "cut", "Failed", { namespace: ns });
    // What a user checks: the bucket, listed on MinIO directly, holds no incomplete upload.
    await waitFor("no multipart upload left in MinIO", async () => {
      return (await openUploads(minio, { bucket: "backups" })).length === 0;
    }, { timeoutMs: budget("react") }).catch(async (e) => {
      const left = await openUploads(minio, { bucket: "backups" });
      throw new Error(`${(e as Error).message}: ${left.map((u) => u.Key).join(", ")}`);
    });
    const failed = await env.getJson<BackupObj>("backup", "cut", ns);
    const ready = failed?.status?.conditions?.find((c) => c.type === "Ready");
    assertEquals(ready?.reason, "RetriesExhausted", ready?.message);
    assert(failed?.status?.leftoversRemovedAt, "status.leftoversRemovedAt not recorded");
    const objects = await minio.makeStore({ bucket: "backups" }).list("");
    assertEquals(objects.filter((o) => !o.key.startsWith(".dbtether-probe/")), []);
    const events = await env.kube.kubectl([
      "get",
      "events",
      "-n",
      ns,
      "--field-selector",
      "reason=LeftoversRemoved",
      "-o",
      "jsonpath={.items[*].message}",
    ]);
    assert(/incomplete upload/.test(events.stdout), `no LeftoversRemoved Event: ${events.stdout}`);
    figure("leftovers: the Event", events.stdout);
  },
);
