/**
 * Restore controller: gather (Restore, its source Backup or storage, the target Database, the
 * jobs of this process) → plan (plan.ts) → execute (wait, fail, clean up, or start a job in the
 * shared JobRunner) → status (status.ts, written only when it changed). One-shot: a Completed
 * or Failed Restore never runs again.
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
import type { Controller, ReconcileContext, Result } from "../runtime/controller.ts";
import { done, requeueAfter } from "../runtime/controller.ts";
import { RetryableError } from "../../lib/errors.ts";
import { objectKey } from "../runtime/informer.ts";
import {
  addFinalizer,
  hasFinalizer,
  removeFinalizer,
  type StatusWriter,
  statusWriter,
} from "../runtime/objects.ts";
import { PgExecutor } from "../postgres/execute.ts";
import { RestoreTargetExecutor } from "../postgres/restore_target.ts";
import type { Reconciler } from "../runtime/reconciler.ts";
import type { ControllerDeps, InformerSet } from "../runtime/shared.ts";
import { NAMESPACE_INDEX, namespaceOf } from "../runtime/indexes.ts";
import { JobStopped } from "../services/job_runner.ts";
import {
  type JobReconcilerServices,
  type JobServices,
  resolveJobCluster,
  startJobController,
  toolDirsOf,
} from "../services/backup_shared.ts";
import { runRestoreJob } from "./job.ts";
import { placementOf } from "./job_spec.ts";
import { planRelease, planRestore, type RestoreAction, type RestoreTarget } from "./plan.ts";
import { failedRestoreStatus, pendingRestoreStatus } from "./status.ts";
import { restoreWatches } from "./watches.ts";

/** Held while a Restore may have left something on the server. */
export const RESTORE_FINALIZER = "dbtether.io/restore-cleanup";

/** The job runner's key of a Restore (Backups use their own key). */
const jobKey = (key: string) => `restore:${key}`;

/** The Restore controller's {@link Reconciler}: one key, gather → plan → execute. */
export class RestoreReconciler implements Reconciler {
  readonly #restores: InformerSet<Restore>;
  readonly #backups: InformerSet<Backup>;
  readonly #databases: InformerSet<Database>;
  readonly #storages: InformerSet<BackupStorage>;
  /** The Restore running into each target database (`[cluster, database]` as JSON). */
  readonly #busy = new Map<string, string>();
  /** Writes the status computed for the latest object (only when it changed). */
  readonly #writeStatus: StatusWriter<Restore>;

  constructor(
    private readonly deps: ControllerDeps,
    private readonly services: JobReconcilerServices,
  ) {
    this.#restores = deps.informers.for<Restore>(RestoreKind);
    this.#backups = deps.informers.for<Backup>(BackupKind).withIndex(NAMESPACE_INDEX, namespaceOf);
    this.#databases = deps.informers.for<Database>(DatabaseKind);
    this.#storages = deps.informers.for<BackupStorage>(BackupStorageKind);
    this.#writeStatus = statusWriter(deps, RestoreKind);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<Result> {
    const { runner } = this.services.jobs;
    const r = this.#restores.get(key);
    const release = planRelease({ restore: r, runningHere: runner.has(jobKey(key)) });
    if (release) {
      if (release.abort) {
        runner.abort(jobKey(key), new JobStopped("deleted", "the Restore was deleted"));
      }
      if (r && release.cleanup) await this.#cleanup(r, ctx);
      return done;
    }
    const ns = r!.metadata.namespace ?? "";
    const action = planRestore({
      restore: r!,
      target: this.#databaseOf(r!),
      backups: this.#backups.byIndex(NAMESPACE_INDEX, ns).filter((b) =>
        b.metadata.namespace === ns
      ),
      storageExists: (name) => this.#storages.get(name) !== undefined,
      runningHere: runner.has(jobKey(key)),
      maxAttempts: this.services.config.backupMaxAttempts,
      targetBusy: (w) => this.#busy.get(busyKey(w)),
      key,
    });
    return await this.#execute(r!, action, ctx);
  }

  async #execute(r: Restore, action: RestoreAction, ctx: ReconcileContext): Promise<Result> {
    switch (action.kind) {
      case "none":
        return done;
      case "wait":
        await this.#writeStatus(r, ctx, (l, now) => pendingRestoreStatus(l, { ...action, now }));
        return requeueAfter(action.afterMs);
      case "fail":
        await this.#writeStatus(r, ctx, (l, now) => failedRestoreStatus(l, { ...action, now }));
        this.services.jobs.metrics.restores.inc({ result: action.reason });
        this.deps.recorder.emit(r, "Warning", "Failed", action.message);
        return done;
      case "start":
        return await this.#start(r, action.target, ctx);
    }
  }

  #databaseOf(r: Restore): Database | undefined {
    return this.#databases.get(`${r.metadata.namespace ?? ""}/${r.spec.target.databaseRef.name}`);
  }

  /** Removes what the Restore may have left on the server, then its finalizer. */
  async #cleanup(r: Restore, ctx: ReconcileContext): Promise<void> {
    if (!hasFinalizer(r, RESTORE_FINALIZER)) return;
    const cluster = r.status?.clusterName;
    const databaseName = r.status?.databaseName;
    if (cluster && databaseName && r.metadata.uid) {
      try {
        // Cluster-level work: our own leftovers are removed even if the namespace lost access.
        const resolved = await this.services.resolver.resolve(cluster);
        const exec = new PgExecutor(resolved.pool, { logger: ctx.logger, signal: ctx.signal });
        await new RestoreTargetExecutor(exec, { logger: ctx.logger })
          .cleanup(placementOf(r, { databaseName, database: this.#databaseOf(r) }));
      } catch (e) {
        if (!(e instanceof RetryableError && e.reason === "ClusterNotFound")) throw e;
        this.deps.recorder.emit(
          r,
          "Warning",
          "CleanupSkipped",
          `Nothing was cleaned up in PostgreSQL: ${e.message}`,
        );
      }
    }
    await removeFinalizer(this.deps.client, {
      resource: RestoreKind,
      object: r,
      finalizer: RESTORE_FINALIZER,
      signal: ctx.signal,
    });
  }

  async #start(r: Restore, target: RestoreTarget, ctx: ReconcileContext): Promise<Result> {
    const { deps, services } = this;
    const storage = this.#storages.get(target.source.storageName)!;
    const database = this.#databaseOf(r)!;
    const cluster = await resolveJobCluster({ client: deps.client, resolver: services.resolver }, {
      storage,
      namespace: r.metadata.namespace ?? "",
      clusterName: target.clusterName,
      onWait: (reason, message) =>
        this.#writeStatus(r, ctx, (l, now) => pendingRestoreStatus(l, { reason, message, now })),
      signal: ctx.signal,
    });
    const key = objectKey(r);
    // Before the job makes anything on the server: it is cleaned up even if the Restore is
    // deleted while this process is down.
    const owned = await addFinalizer(deps.client, {
      resource: RestoreKind,
      object: r,
      finalizer: RESTORE_FINALIZER,
      signal: ctx.signal,
    });
    const job = {
      restore: owned as Restore,
      target,
      database,
      storage,
      cluster,
      toolDirs: toolDirsOf(services.config),
      env: services.env,
    };
    const where = busyKey(target);
    const started = services.jobs.runner.start(
      jobKey(key),
      (signal) => runRestoreJob(deps, { shared: services.jobs, job, signal }),
      () => {
        this.#busy.delete(where);
        services.enqueue(key);
      },
    );
    if (started) this.#busy.set(where, key);
    return done;
  }
}

function busyKey(w: { clusterName: string; databaseName: string }): string {
  return JSON.stringify([w.clusterName, w.databaseName]);
}

/** Starts the Restore controller with the process's shared job machinery. */
export function setupRestoreController(deps: ControllerDeps, services: JobServices): Controller {
  return startJobController(deps, {
    name: "restore",
    reconciler: (enqueue) => new RestoreReconciler(deps, { ...services, enqueue }),
    watches: restoreWatches(deps),
  });
}
