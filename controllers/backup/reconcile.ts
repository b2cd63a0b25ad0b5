/**
 * Backup controller: gather (Backup, Database, BackupStorage, whether a job runs here) →
 * plan (plan.ts) → execute (start a job, wait, fail, delete after TTL) → status (status.ts,
 * written through updateStatus, which writes only when it changed).
 *
 * The dump itself runs outside the reconcile, in the JobRunner (job.ts), so a long backup
 * never holds a queue worker. On shutdown the runner aborts running dumps (no object is left
 * at the key) and puts their Backups back to Pending with reason Interrupted; a Backup found
 * Running with no job here (a crash) is recorded Interrupted too. The next leader retries
 * them with the same key, until `--backup-max-attempts` interruptions. Storage failures are
 * retried by the job's outcome for `--backup-storage-retry-for`, and are not interruptions.
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { type Database, DatabaseKind } from "../../crds/database.ts";
import type { Controller, ReconcileContext, Result } from "../runtime/controller.ts";
import { done, requeueAfter } from "../runtime/controller.ts";
import { objectKey } from "../runtime/informer.ts";
import { type StatusWriter, statusWriter } from "../runtime/objects.ts";
import type { Reconciler } from "../runtime/reconciler.ts";
import { pauseGate } from "../runtime/pause.ts";
import type { ControllerDeps, InformerSet } from "../runtime/shared.ts";
import { JobStopped } from "../services/job_runner.ts";
import {
  type JobReconcilerServices,
  type JobServices,
  resolveJobCluster,
  startJobController,
  toolDirsOf,
} from "../services/backup_shared.ts";
import { runBackupJob } from "./job.ts";
import { removeLeftovers } from "./leftovers.ts";
import { kubeTime } from "../../lib/time.ts";
import { type BackupAction, type BackupTarget, planBackup } from "./plan.ts";
import { failedStatus, interruptedStatus, pendingStatus } from "./status.ts";
import { backupWatches } from "./watches.ts";

/** How soon a Backup found Running with no job here is planned again. */
const INTERRUPTED_RECHECK_MS = 1_000;

/** The Backup controller's {@link Reconciler}: one key, gather → plan → execute. */
export class BackupReconciler implements Reconciler {
  readonly #backups: InformerSet<Backup>;
  readonly #databases: InformerSet<Database>;
  readonly #storages: InformerSet<BackupStorage>;
  /** Writes the status computed for the latest object (only when it changed). */
  readonly #writeStatus: StatusWriter<Backup>;

  constructor(
    private readonly deps: ControllerDeps,
    private readonly services: JobReconcilerServices,
  ) {
    this.#backups = deps.informers.for<Backup>(BackupKind);
    this.#databases = deps.informers.for<Database>(DatabaseKind);
    this.#storages = deps.informers.for<BackupStorage>(BackupStorageKind);
    this.#writeStatus = statusWriter(deps, BackupKind);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<Result> {
    const { jobs, config } = this.services;
    const b = this.#backups.get(key);
    if (!b || b.metadata.deletionTimestamp) {
      jobs.runner.abort(key, new JobStopped("deleted", "the Backup was deleted"));
      return done;
    }
    // Paused: nothing starts, no leftovers or TTL deletion; a dump already running here is left
    // to finish (its own status writes record how it ended). docs/design/pause_and_observe.md.
    const gate = { resource: BackupKind, object: b, signal: ctx.signal, writeOnResume: true };
    if ((await pauseGate(this.deps, gate)).paused) return done;
    const ns = b.metadata.namespace ?? "";
    const action = planBackup({
      backup: b,
      database: this.#databases.get(`${ns}/${b.spec.databaseRef.name}`),
      storage: this.#storages.get(b.spec.storageRef.name),
      runningHere: jobs.runner.has(key),
      now: this.deps.clock.now(),
      maxAttempts: config.backupMaxAttempts,
    });
    return await this.#execute(b, action, ctx);
  }

  async #execute(b: Backup, action: BackupAction, ctx: ReconcileContext): Promise<Result> {
    switch (action.kind) {
      case "none":
        return done;
      case "requeue":
        return requeueAfter(action.afterMs);
      case "delete":
        await this.deps.client.delete(BackupKind, {
          namespace: b.metadata.namespace,
          name: b.metadata.name,
          ...(b.metadata.uid ? { uid: b.metadata.uid } : {}),
          signal: ctx.signal,
        });
        return done;
      case "wait":
        await this.#writeStatus(b, ctx, (l, now) => pendingStatus(l, { ...action, now }));
        return requeueAfter(action.afterMs);
      case "fail":
        await this.#writeStatus(b, ctx, (l, now) => failedStatus(l, { ...action, now }));
        this.services.jobs.metrics.failures.inc({ reason: action.reason });
        this.deps.recorder.emit(b, "Warning", "Failed", action.message);
        return done;
      case "interrupted":
        return await this.#interrupted(b, action.message, ctx);
      case "start":
        return await this.#start(b, action.target, ctx);
      case "removeLeftovers":
        return await this.#removeLeftovers(b, action.key, ctx);
    }
  }

  /** Removes what the Failed Backup's runs left at `key`, then records that it did. */
  async #removeLeftovers(b: Backup, key: string, ctx: ReconcileContext): Promise<Result> {
    const { services } = this;
    const removed = await removeLeftovers(this.deps, {
      backup: b,
      storage: this.#storages.get(b.spec.storageRef.name)!,
      key,
      shared: services.jobs,
      env: services.env,
      stallTimeoutMs: services.config.backupStallTimeoutMs,
      signal: ctx.signal,
      log: ctx.logger,
    });
    await this.#writeStatus(
      b,
      ctx,
      (l, now) =>
        l.status?.phase === "Failed" && !l.status.leftoversRemovedAt
          ? { ...l.status, leftoversRemovedAt: kubeTime(now) }
          : undefined,
    );
    if (removed.length) {
      const what = removed.join(", ");
      ctx.logger.info("Removed what the failed Backup left in storage", { key, removed: what });
      this.deps.recorder.emit(b, "Normal", "LeftoversRemoved", `Removed from ${key}: ${what}`);
    }
    return done;
  }

  async #interrupted(b: Backup, message: string, ctx: ReconcileContext): Promise<Result> {
    const runner = this.services.jobs.runner;
    const recorded = await this.#writeStatus(b, ctx, (l, now) =>
      // Checked again on the latest object: a job may have started or ended meanwhile.
      l.status?.phase === "Running" && !runner.has(objectKey(l))
        ? interruptedStatus(l, { message, now })
        : undefined);
    if (recorded) this.deps.recorder.emit(b, "Warning", "Interrupted", message);
    // Status-only changes do not come back through the watch, and a job that just ended
    // leaves the cache a moment behind (Running, but no job here): look again shortly.
    return requeueAfter(INTERRUPTED_RECHECK_MS);
  }

  async #start(b: Backup, target: BackupTarget, ctx: ReconcileContext): Promise<Result> {
    const { deps, services } = this;
    const storage = this.#storages.get(b.spec.storageRef.name)!;
    const cluster = await resolveJobCluster({ client: deps.client, resolver: services.resolver }, {
      storage,
      namespace: b.metadata.namespace ?? "",
      clusterName: target.clusterName,
      onWait: (reason, message) =>
        this.#writeStatus(b, ctx, (l, now) => pendingStatus(l, { reason, message, now })),
      signal: ctx.signal,
    });
    const key = objectKey(b);
    const job = {
      backup: b,
      target,
      storage,
      cluster,
      toolDirs: toolDirsOf(services.config),
      env: services.env,
      storageRetryForMs: services.config.backupStorageRetryForMs,
      gzipWorkers: services.config.backupGzipWorkers,
      stallTimeoutMs: services.config.backupStallTimeoutMs,
    };
    services.jobs.runner.start(
      key,
      (signal) => runBackupJob(deps, { shared: services.jobs, job, signal }),
      () => services.enqueue(key),
    );
    return done;
  }
}

/** Starts the Backup controller with the process's shared job machinery. */
export function setupBackupController(deps: ControllerDeps, services: JobServices): Controller {
  return startJobController(deps, {
    name: "backup",
    reconciler: (enqueue) => new BackupReconciler(deps, { ...services, enqueue }),
    watches: backupWatches(deps),
  });
}
