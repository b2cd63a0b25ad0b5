/** What the BackupSchedule verify tests share: the objects they read and the waits. */
import { assertEquals } from "./assert.ts";
import { databaseYaml, SEED, storageYaml } from "./backup.ts";
import type { TestEnv } from "./env.ts";
import { mergePatch } from "./fixtures.ts";
import { backupsIn as backupsOf, minutely, scheduleYaml } from "./schedules.ts";
import { startMinio, type StorageServer } from "./storage_servers.ts";
import { budget } from "./timeouts.ts";
import { waitFor } from "./wait.ts";

/** The annotation a verification leaves on the Backup it judged. */
export const VERIFIED = "dbtether.io/verified";

import type { Cond } from "./fixtures.ts";
export type { Cond };
export type BackupObj = {
  metadata: {
    name: string;
    uid: string;
    creationTimestamp?: string;
    annotations?: Record<string, string>;
  };
  status?: {
    phase?: string;
    path?: string;
    completedAt?: string;
    counts?: { tables: number; rows: number };
  };
};
export type Verification = {
  time?: string;
  backup?: string;
  result?: string;
  duration?: string;
  message?: string;
};
export type ScheduleObj = {
  metadata: { name: string; uid: string; generation: number };
  status?: { lastVerification?: Verification; verifying?: string; conditions?: Cond[] };
};

/** A minutely schedule of Database `db` into the BackupStorage "minio", plus `extra` lines. */
export const schedYaml = (ns: string, name: string, db: string, extra: string) =>
  scheduleYaml(ns, name, minutely(db, "minio", extra));

export const backupsIn = (env: TestEnv, ns: string) => backupsOf<BackupObj>(env, ns);

export const schedule = (env: TestEnv, ns: string, name: string) =>
  env.getJson<ScheduleObj>("backupschedule", name, ns);

export async function events(
  env: TestEnv,
  ns: string,
): Promise<{ type: string; reason: string; message: string }[]> {
  const r = await env.kube.kubectl(["get", "events", "-n", ns, "-o", "json"]);
  return JSON.parse(r.stdout).items;
}

/** Database "app" (`dbName` on the server) in `ns`, Ready, holding the SEED tables. */
export async function seeded(env: TestEnv, ns: string, dbName: string): Promise<void> {
  await env.kube.apply(databaseYaml(ns, "app", dbName));
  await env.waitPhase("database", "app", "Ready", { namespace: ns });
  const r = await env.pg.psql(SEED, { database: dbName });
  assertEquals(r.code, 0, r.stderr);
}

/** Databases on the server whose name starts with `prefix`. */
export async function databasesLike(env: TestEnv, prefix: string): Promise<string[]> {
  const out = await env.pg.superSql(
    `SELECT datname FROM pg_database WHERE starts_with(datname, '${prefix}') ORDER BY 1`,
  );
  return out.split("\n").map((l) => l.trim()).filter(Boolean);
}

/** Waits for a verification of the schedule that ended after `after` (ms). */
export function verificationAfter(env: TestEnv, ns: string, name: string, after = 0) {
  return waitFor(`a verification of ${ns}/${name}`, async () => {
    const s = await schedule(env, ns, name);
    const v = s?.status?.lastVerification;
    return v?.time && Date.parse(v.time) >= after && !s?.status?.verifying ? s : undefined;
  }, { timeoutMs: budget("bulk"), intervalMs: 1000 });
}

/** Suspends schedule `ns`/nightly and waits until none of its Backups still runs. */
export async function suspendSettled(env: TestEnv, ns: string): Promise<BackupObj[]> {
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { suspend: true },
  });
  return await waitFor("every Backup finished", async () => {
    const list = await backupsIn(env, ns);
    return list.every((b) => b.status?.phase === "Completed" || b.status?.phase === "Failed") &&
      list;
  }, { timeoutMs: budget("backup") });
}

/** MinIO with the bucket "backups", the test DBCluster, and BackupStorage "minio" Ready. */
export async function servers(env: TestEnv): Promise<StorageServer> {
  const minio = await startMinio();
  await minio.createBucket("backups");
  await env.kube.apply(env.clusterManifest("test-pg"));
  await env.kube.apply(storageYaml("minio", { server: minio }));
  await env.waitPhase("backupstorage", "minio", "Ready");
  return minio;
}
