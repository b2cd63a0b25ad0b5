/**
 * Restore controller: observe (Restore, its source Backup or storage, the target Database) →
 * plan (plan.ts) → act (wait, fail, or start a job in the shared JobRunner) → status.
 * One-shot: a Completed or Failed Restore never runs again.
 *
 * A finalizer is added before a job starts (before anything is made on the server). Once the
 * Restore is finished, or deleted, and no job of it runs here, what it may have left on the
 * server (scratch or replaced database, login role, borrowed memberships) is removed, also
 * after a crash, and then the finalizer.
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type Restore, RestoreKind } from "../../crds/restore.ts";
import {
  type Controller,
  done,
  type ReconcileContext,
  requeueAfter,
  type Result,
} from "../runtime/controller.ts";
import { RetryableError } from "../../lib/errors.ts";
import { objectKey } from "../runtime/informer.ts";
import { addFinalizer, hasFinalizer, removeFinalizer, updateStatus } from "../runtime/objects.ts";
import { PgExecutor } from "../postgres/execute.ts";
import { RestoreTargetExecutor } from "../postgres/restore_target.ts";
import { addController, type ControllerDeps } from "../runtime/shared.ts";
import type { Services } from "../services/services.ts";
import { JobStopped } from "../services/job_runner.ts";
import { backupShared, resolveJobCluster, toolDirsOf } from "../services/backup_shared.ts";
import { placementOf, runRestoreJob } from "./job.ts";
import { planRestore, type RestoreTarget, WAIT_RECHECK_MS } from "./plan.ts";
import { failedRestoreStatus, pendingRestoreStatus } from "./status.ts";

/** Held while a Restore may have left something on the server. */
export const RESTORE_FINALIZER = "dbtether.io/restore-cleanup";

export function setupRestoreController(
  deps: ControllerDeps,
  services: Pick<Services, "resolver" | "config" | "env">,
): Controller {
  const restores = deps.informers.for<Restore>(RestoreKind);
  const backups = deps.informers.for<Backup>(BackupKind);
  const databases = deps.informers.for<Database>(DatabaseKind);
  const storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  const shared = backupShared(deps, services.config);

  const reconcile = async (key: string, ctx: ReconcileContext): Promise<Result> => {
    const r = restores.get(key);
    const job = `restore:${key}`;
    if (!r || r.metadata.deletionTimestamp) {
      shared.runner.abort(job, new JobStopped("deleted", "the Restore was deleted"));
      // The job re-queues the key when it ended; clean up after it, not beside it.
      if (r && !shared.runner.has(job)) await release(r, ctx);
      return done;
    }
    const phase = r.status?.phase;
    if (phase === "Completed" || phase === "Failed") {
      if (!shared.runner.has(job)) await release(r, ctx);
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
        await updateStatus(deps.client, {
          resource: RestoreKind,
          object: r,
          compute: (l) => pendingRestoreStatus(l, { ...action, now }),
        });
        return requeueAfter(action.afterMs);
      case "fail":
        await updateStatus(deps.client, {
          resource: RestoreKind,
          object: r,
          compute: (l) => failedRestoreStatus(l, { ...action, now }),
        });
        shared.metrics.restores.inc({ result: action.reason });
        deps.recorder.emit(r, "Warning", "Failed", action.message);
        return done;
      case "start":
        return await start(r, action.target);
    }
  };

  /** Removes what the Restore may have left on the server, then its finalizer. */
  const release = async (r: Restore, ctx: ReconcileContext): Promise<void> => {
    if (!hasFinalizer(r, RESTORE_FINALIZER)) return;
    const cluster = r.status?.clusterName;
    const databaseName = r.status?.databaseName;
    if (cluster && databaseName && r.metadata.uid) {
      const ns = r.metadata.namespace ?? "";
      try {
        // Cluster-level work: our own leftovers are removed even if the namespace lost access.
        const resolved = await services.resolver.resolve(cluster);
        const database = databases.get(`${ns}/${r.spec.target.databaseRef.name}`);
        const exec = new PgExecutor(resolved.pool, { logger: ctx.logger, signal: ctx.signal });
        await new RestoreTargetExecutor(exec, { logger: ctx.logger })
          .cleanup(placementOf(r, { databaseName, database }));
      } catch (e) {
        if (!(e instanceof RetryableError && e.reason === "ClusterNotFound")) throw e;
        deps.recorder.emit(
          r,
          "Warning",
          "CleanupSkipped",
          `Nothing was cleaned up in PostgreSQL: ${e.message}`,
        );
      }
    }
    await removeFinalizer(deps.client, {
      resource: RestoreKind,
      object: r,
      finalizer: RESTORE_FINALIZER,
    });
  };

  // One restore at a time per target database: two swaps into one database would race.
  const busy = new Map<string, string>();

  const start = async (r: Restore, target: RestoreTarget): Promise<Result> => {
    const ns = r.metadata.namespace ?? "";
    const where = JSON.stringify([target.clusterName, target.databaseName]);
    const other = busy.get(where);
    if (other !== undefined && other !== objectKey(r)) {
      await updateStatus(deps.client, {
        resource: RestoreKind,
        object: r,
        compute: (l) =>
          pendingRestoreStatus(l, {
            reason: "TargetBusy",
            message:
              `Waiting for Restore ${other} into database "${target.databaseName}" to finish`,
            now: deps.clock.now(),
          }),
      });
      return requeueAfter(WAIT_RECHECK_MS);
    }
    const storage = storages.get(target.source.storageName)!;
    const database = databases.get(`${ns}/${r.spec.target.databaseRef.name}`)!;
    const cluster = await resolveJobCluster(deps, services, {
      storage,
      namespace: ns,
      clusterName: target.clusterName,
      onWait: (reason, message) =>
        updateStatus(deps.client, {
          resource: RestoreKind,
          object: r,
          compute: (l) => pendingRestoreStatus(l, { reason, message, now: deps.clock.now() }),
        }),
    });
    const key = objectKey(r);
    const toolDirs = toolDirsOf(services.config);
    // Before the job makes anything on the server: it is cleaned up even if the Restore is
    // deleted while this process is down.
    const owned = await addFinalizer(deps.client, {
      resource: RestoreKind,
      object: r,
      finalizer: RESTORE_FINALIZER,
    });
    const started = shared.runner.start(
      `restore:${key}`,
      (signal) =>
        runRestoreJob(deps, shared, {
          restore: owned as Restore,
          target,
          database,
          storage,
          cluster,
          toolDirs,
          env: services.env,
        }, signal),
      () => {
        busy.delete(where);
        controller.enqueue(key);
      },
    );
    if (started) busy.set(where, key);
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
