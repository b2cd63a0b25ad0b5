/**
 * Restore controller: observe (Restore, its source Backup or storage, the target Database) →
 * plan (plan.ts) → act (wait, fail, or start a job in the shared JobRunner) → status.
 * One-shot: a Completed or Failed Restore never runs again.
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type Restore, RestoreKind } from "../../crds/restore.ts";
import { type Controller, done, requeueAfter, type Result } from "../runtime/controller.ts";
import { objectKey } from "../runtime/informer.ts";
import { updateStatus } from "../runtime/objects.ts";
import { addController, type ControllerDeps } from "../runtime/shared.ts";
import type { BackupServices } from "../backup/reconcile.ts";
import { JobStopped } from "../backup/runner.ts";
import { backupShared, resolveJobCluster, toolDirsOf } from "../backup/shared.ts";
import { runRestoreJob } from "./job.ts";
import { planRestore, type RestoreTarget } from "./plan.ts";
import { failedRestoreStatus, pendingRestoreStatus } from "./status.ts";

export function setupRestoreController(deps: ControllerDeps, services: BackupServices): Controller {
  const restores = deps.informers.for<Restore>(RestoreKind);
  const backups = deps.informers.for<Backup>(BackupKind);
  const databases = deps.informers.for<Database>(DatabaseKind);
  const storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  const shared = backupShared(deps, services.config);

  const reconcile = async (key: string): Promise<Result> => {
    const r = restores.get(key);
    if (!r || r.metadata.deletionTimestamp) {
      shared.runner.abort(`restore:${key}`, new JobStopped("deleted", "the Restore was deleted"));
      return done;
    }
    const ns = r.metadata.namespace ?? "";
    const action = planRestore({
      restore: r,
      target: databases.get(`${ns}/${r.spec.target.databaseRef.name}`),
      backups: backups.list().filter((b) => b.metadata.namespace === ns),
      storageExists: (name) => storages.get(name) !== undefined,
      runningHere: shared.runner.has(`restore:${key}`),
      maxAttempts: services.config.backupMaxAttempts,
    });
    const now = deps.clock.now();
    switch (action.kind) {
      case "none":
        return done;
      case "wait":
        await updateStatus(
          deps.client,
          RestoreKind,
          r,
          (l) => pendingRestoreStatus(l, { ...action, now }),
        );
        return requeueAfter(action.afterMs);
      case "fail":
        await updateStatus(
          deps.client,
          RestoreKind,
          r,
          (l) => failedRestoreStatus(l, { ...action, now }),
        );
        shared.metrics.restores.inc({ result: action.reason });
        deps.recorder.emit(r, "Warning", "Failed", action.message);
        return done;
      case "start":
        return await start(r, action.target);
    }
  };

  const start = async (r: Restore, target: RestoreTarget): Promise<Result> => {
    const ns = r.metadata.namespace ?? "";
    const storage = storages.get(target.source.storageName)!;
    const database = databases.get(`${ns}/${r.spec.target.databaseRef.name}`)!;
    const cluster = await resolveJobCluster(deps, services, {
      storage,
      namespace: ns,
      clusterName: target.clusterName,
      onWait: (reason, message) =>
        updateStatus(
          deps.client,
          RestoreKind,
          r,
          (l) => pendingRestoreStatus(l, { reason, message, now: deps.clock.now() }),
        ),
    });
    const key = objectKey(r);
    const toolDirs = toolDirsOf(services.config);
    shared.runner.start(
      `restore:${key}`,
      (signal) =>
        runRestoreJob(deps, shared, {
          restore: r,
          target,
          database,
          storage,
          cluster,
          toolDirs,
          env: services.env,
        }, signal),
      () => controller.enqueue(key),
    );
    return done;
  };

  const controller = addController(deps, "restore", reconcile);
  controller.watch(restores);
  const waiting = (match: (r: Restore) => boolean) =>
    restores.list().filter((r) =>
      match(r) && r.status?.phase !== "Completed" && r.status?.phase !== "Failed"
    ).map(objectKey);
  controller.watch(backups, (b) => waiting((r) => r.metadata.namespace === b.metadata.namespace));
  controller.watch(databases, (d) =>
    waiting((r) =>
      r.metadata.namespace === d.metadata.namespace &&
      r.spec.target.databaseRef.name === d.metadata.name
    ));
  return controller;
}
