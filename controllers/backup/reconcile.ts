/**
 * Backup controller: observe (Backup, Database, BackupStorage, whether a job runs here) →
 * plan (plan.ts) → act (start a job, wait, fail, delete after TTL) → status (status.ts).
 *
 * The dump itself runs outside the reconcile, in the JobRunner (job.ts), so a long backup
 * never holds a queue worker. On shutdown the runner aborts running dumps (no object is left
 * at the key) and puts their Backups back to Pending with reason Interrupted; a Backup found
 * Running with no job here (a crash) is recorded Interrupted too. The next leader retries
 * them with the same key, until `--backup-max-attempts` interruptions. Storage failures are
 * retried by the job's outcome for `--backup-storage-retry-for`, and are not interruptions.
 */
import type { Services } from "../services/services.ts";
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type Controller, done, requeueAfter, type Result } from "../runtime/controller.ts";
import { objectKey } from "../runtime/informer.ts";
import { updateStatus } from "../runtime/objects.ts";
import { addController, type ControllerDeps } from "../runtime/shared.ts";
import { runBackupJob } from "./job.ts";
import { type BackupAction, type BackupTarget, planBackup } from "./plan.ts";
import { JobStopped } from "../services/job_runner.ts";
import { backupShared, resolveJobCluster, toolDirsOf } from "../services/backup_shared.ts";
import { failedStatus, interruptedStatus, pendingStatus } from "./status.ts";

/** How soon a Backup found Running with no job here is planned again. */
const INTERRUPTED_RECHECK_MS = 1_000;

/** What the Backup and Restore controllers need beyond the runtime. */
export type BackupServices = Pick<Services, "resolver" | "config" | "env">;

export function setupBackupController(deps: ControllerDeps, services: BackupServices): Controller {
  const backups = deps.informers.for<Backup>(BackupKind);
  const databases = deps.informers.for<Database>(DatabaseKind);
  const storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  const shared = backupShared(deps, services.config);

  const reconcile = async (key: string): Promise<Result> => {
    const b = backups.get(key);
    if (!b || b.metadata.deletionTimestamp) {
      shared.runner.abort(key, new JobStopped("deleted", "the Backup was deleted"));
      return done;
    }
    const ns = b.metadata.namespace ?? "";
    const action = planBackup({
      backup: b,
      database: databases.get(`${ns}/${b.spec.databaseRef.name}`),
      storage: storages.get(b.spec.storageRef.name),
      runningHere: shared.runner.has(key),
      now: deps.clock.now(),
      maxAttempts: services.config.backupMaxAttempts,
    });
    return await act(b, action);
  };

  const act = async (b: Backup, action: BackupAction): Promise<Result> => {
    const now = deps.clock.now();
    switch (action.kind) {
      case "none":
        return done;
      case "requeue":
        return requeueAfter(action.afterMs);
      case "delete":
        await deps.client.delete(BackupKind, {
          namespace: b.metadata.namespace,
          name: b.metadata.name,
          ...(b.metadata.uid ? { uid: b.metadata.uid } : {}),
        });
        return done;
      case "wait":
        await updateStatus(deps.client, {
          resource: BackupKind,
          object: b,
          compute: (l) => pendingStatus(l, { ...action, now }),
        });
        return requeueAfter(action.afterMs);
      case "fail":
        await updateStatus(deps.client, {
          resource: BackupKind,
          object: b,
          compute: (l) => failedStatus(l, { ...action, now }),
        });
        shared.metrics.failures.inc({ reason: action.reason });
        deps.recorder.emit(b, "Warning", "Failed", action.message);
        return done;
      case "interrupted": {
        const recorded = await updateStatus(deps.client, {
          resource: BackupKind,
          object: b,
          compute: (l) =>
            l.status?.phase === "Running" && !shared.runner.has(objectKey(l))
              ? interruptedStatus(l, { message: action.message, now })
              : undefined,
        });
        if (recorded) deps.recorder.emit(b, "Warning", "Interrupted", action.message);
        // Status-only changes do not come back through the watch, and a job that just ended
        // leaves the cache a moment behind (Running, but no job here): look again shortly.
        return requeueAfter(INTERRUPTED_RECHECK_MS);
      }
      case "start":
        return await start(b, action.target);
    }
  };

  const start = async (b: Backup, target: BackupTarget): Promise<Result> => {
    const storage = storages.get(b.spec.storageRef.name)!;
    const ns = b.metadata.namespace ?? "";
    const cluster = await resolveJobCluster(deps, services, {
      storage,
      namespace: ns,
      clusterName: target.clusterName,
      onWait: (reason, message) =>
        updateStatus(deps.client, {
          resource: BackupKind,
          object: b,
          compute: (l) => pendingStatus(l, { reason, message, now: deps.clock.now() }),
        }),
    });
    const key = objectKey(b);
    const toolDirs = toolDirsOf(services.config);
    shared.runner.start(
      key,
      (signal) =>
        runBackupJob(deps, shared, {
          backup: b,
          target,
          storage,
          cluster,
          toolDirs,
          env: services.env,
          storageRetryForMs: services.config.backupStorageRetryForMs,
          gzipWorkers: services.config.backupGzipWorkers,
        }, signal),
      () => controller.enqueue(key),
    );
    return done;
  };

  const controller = addController(deps, "backup", reconcile);
  controller.watch(backups);
  // A Backup waiting for its Database or storage starts as soon as they become Ready.
  controller.watch(
    databases,
    (d) =>
      waitingBackups(backups.list(), (x) =>
        x.metadata.namespace === d.metadata.namespace &&
        x.spec.databaseRef.name === d.metadata.name),
  );
  controller.watch(
    storages,
    (s) => waitingBackups(backups.list(), (x) => x.spec.storageRef.name === s.metadata.name),
  );
  return controller;
}

function waitingBackups(all: Backup[], match: (b: Backup) => boolean): string[] {
  return all.filter((b) =>
    match(b) && b.status?.phase !== "Completed" && b.status?.phase !== "Failed"
  ).map(objectKey);
}
