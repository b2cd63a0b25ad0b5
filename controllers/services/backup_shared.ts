/**
 * What the Backup and Restore controllers share in one process: the concurrency limiter
 * (restores count against the same limits as backups), the runner of long jobs, and the
 * backup metrics, and the manifest keyring. register.ts builds them once ({@link createBackupShared})
 * and hands the same object to both controllers at construction.
 */
import type { ControllerSettings, Services } from "./services.ts";
import { BackupLimiter, type Lease, type LimitHeld } from "../../backup/limiter.ts";
import type { Clock } from "../../lib/clock.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import { RetryableError } from "../../lib/errors.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import type { Controller } from "../runtime/controller.ts";
import { type Reconciler, startController, type Watches } from "../runtime/reconciler.ts";
import { checkStorageNamespace } from "./storage_access.ts";
import type { ClusterResolver, ResolvedCluster } from "./resolver.ts";
import { JobRunner } from "./job_runner.ts";
import { ManifestKeyring } from "./signing.ts";

export interface BackupMetrics {
  duration: ReturnType<ControllerDeps["metrics"]["histogram"]>;
  sizeBytes: ReturnType<ControllerDeps["metrics"]["gauge"]>;
  bytesTotal: ReturnType<ControllerDeps["metrics"]["counter"]>;
  lastSuccess: ReturnType<ControllerDeps["metrics"]["gauge"]>;
  failures: ReturnType<ControllerDeps["metrics"]["counter"]>;
  /** Calls and uploads of backups that stalled (storage/stall_guard.ts), by BackupStorage. */
  stalls: ReturnType<ControllerDeps["metrics"]["counter"]>;
  restores: ReturnType<ControllerDeps["metrics"]["counter"]>;
  restoreDuration: ReturnType<ControllerDeps["metrics"]["histogram"]>;
}

/** What every backup or restore run is given: where, on which server, with which tools. */
export interface JobInputs {
  storage: BackupStorage;
  cluster: ResolvedCluster;
  /** `--pg-tools-dir` ({@link toolDirsOf}). */
  toolDirs: string[] | undefined;
  /** Workload-identity environment for the storage SDKs. */
  env: Record<string, string | undefined>;
}

/**
 * What the Backup and Restore controllers are constructed with: the shared services and the
 * one {@link BackupShared} of this process.
 */
export type JobServices = Pick<Services, "resolver" | "config" | "env"> & {
  jobs: BackupShared;
};

/** What a Backup or Restore reconciler is constructed with. */
export type JobReconcilerServices = JobServices & {
  /** Queues a key again (a job that ended re-queues its object). */
  enqueue: (key: string) => void;
};

export interface BackupShared {
  limiter: BackupLimiter;
  runner: JobRunner;
  metrics: BackupMetrics;
  /** The keys that sign and verify backup manifests. */
  keyring: ManifestKeyring;
}

/** The settings {@link createBackupShared} reads. */
export type BackupSharedSettings = Pick<
  ControllerSettings,
  | "maxConcurrentBackups"
  | "maxConcurrentBackupsPerCluster"
  | "maxConcurrentBackupsPerStorage"
  | "backupShutdownGraceMs"
  | "backupSigningSecret"
>;

/**
 * Builds what the Backup and Restore controllers share and registers the job runner as a
 * leader-only runnable. Call once per process (register.ts); both controllers get the result.
 */
export function createBackupShared(
  deps: ControllerDeps,
  config: BackupSharedSettings,
): BackupShared {
  const s: BackupShared = {
    limiter: new BackupLimiter({
      global: config.maxConcurrentBackups,
      perCluster: config.maxConcurrentBackupsPerCluster,
      ...(config.maxConcurrentBackupsPerStorage !== undefined
        ? { perStorage: config.maxConcurrentBackupsPerStorage }
        : {}),
      clock: deps.clock,
    }),
    keyring: new ManifestKeyring(deps.client, config.backupSigningSecret),
    runner: new JobRunner(deps.logger.with({ component: "backup-jobs" }), {
      shutdownGraceMs: config.backupShutdownGraceMs,
      clock: deps.clock,
    }),
    metrics: backupMetrics(deps.metrics),
  };
  deps.manager.addLeaderRunnable("backup-jobs", s.runner.runnable());
  return s;
}

/** The metrics of backups and restores, registered once. */
function backupMetrics(m: ControllerDeps["metrics"]): BackupMetrics {
  const buckets = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400];
  return {
    duration: m.histogram(
      "dbtether_backup_duration_seconds",
      "Duration of successful backups.",
      ["namespace", "database"],
      buckets,
    ),
    sizeBytes: m.gauge(
      "dbtether_backup_size_bytes",
      "Stored (compressed) size of the last successful backup.",
      ["namespace", "database"],
    ),
    bytesTotal: m.counter(
      "dbtether_backup_bytes_total",
      "Stored bytes written by successful backups.",
      ["namespace", "database"],
    ),
    lastSuccess: m.gauge(
      "dbtether_backup_last_success_timestamp_seconds",
      "Unix time of the last successful backup.",
      ["namespace", "database"],
    ),
    failures: m.counter(
      "dbtether_backup_failures_total",
      "Failed backups by reason.",
      ["reason"],
    ),
    stalls: m.counter(
      "dbtether_backup_storage_stalls_total",
      "Storage requests and uploads of backups that stalled past --backup-stall-timeout, " +
        "by BackupStorage.",
      ["storage"],
    ),
    restores: m.counter(
      "dbtether_restore_total",
      "Finished restores by result (Completed or a failure reason).",
      ["result"],
    ),
    restoreDuration: m.histogram(
      "dbtether_restore_duration_seconds",
      "Duration of successful restores.",
      [],
      buckets,
    ),
  };
}

/**
 * Waits for a slot, calling `onWaiting(position, blockedBy)` at once and whenever the queue
 * position or the limit it waits for changed (checked every `everyMs`). Rejects when `signal`
 * aborts.
 */
export async function acquireSlot(
  limiter: BackupLimiter,
  opts: {
    id: string;
    cluster: string;
    /** The BackupStorage the job uses, counted against `--max-concurrent-backups-per-storage`. */
    storage?: string;
    signal: AbortSignal;
    clock: Clock;
    onWaiting: (position: number, blockedBy?: LimitHeld) => Promise<void>;
    everyMs?: number;
  },
): Promise<Lease> {
  let lease: Lease | undefined;
  const p = limiter.acquire(opts.cluster, {
    id: opts.id,
    storage: opts.storage,
    signal: opts.signal,
  }).then((l) => lease = l);
  p.catch(() => {});
  let last = "";
  for (;;) {
    await Promise.resolve();
    if (lease) return lease;
    const pos = limiter.position(opts.id);
    const seen = pos?.state === "waiting" ? JSON.stringify([pos.position, pos.blockedBy]) : "";
    if (pos?.state === "waiting" && seen !== last) {
      last = seen;
      await opts.onWaiting(pos.position, pos.blockedBy);
    }
    if (lease) return lease;
    const tick = opts.clock.sleep(opts.everyMs ?? 5000, opts.signal);
    const r = await Promise.race([p, tick.then(() => undefined)]);
    if (r) return r;
  }
}

/** Why a Backup or Restore waits before it can start. */
export type JobWaitReason = "NamespaceNotAllowed" | "ClusterNotReady";

/**
 * The checks every Backup and Restore passes before its job starts: the namespace may use the
 * BackupStorage, and the DBCluster resolves for that namespace. On a retryable failure,
 * `onWait` records why (status), then the error propagates so the key backs off.
 */
export async function resolveJobCluster(
  deps: Pick<ControllerDeps, "client"> & { resolver: ClusterResolver },
  o: {
    storage: BackupStorage;
    namespace: string;
    clusterName: string;
    onWait: (reason: JobWaitReason, message: string) => Promise<unknown>;
    signal: AbortSignal;
  },
): Promise<ResolvedCluster> {
  try {
    await checkStorageNamespace(deps.client, {
      storage: o.storage,
      namespace: o.namespace,
      signal: o.signal,
    });
    return await deps.resolver.resolve(o.clusterName, { namespace: o.namespace });
  } catch (e) {
    if (!(e instanceof RetryableError)) throw e;
    await o.onWait(
      e.reason === "NamespaceNotAllowed" ? "NamespaceNotAllowed" : "ClusterNotReady",
      e.message,
    );
    throw e;
  }
}

/** `--pg-tools-dir`, or undefined for the default search. */
export function toolDirsOf(config: Pick<ControllerSettings, "pgToolsDirs">): string[] | undefined {
  return config.pgToolsDirs.length ? [...config.pgToolsDirs] : undefined;
}

/** Options of {@link startJobController}. */
export interface JobControllerOptions {
  name: string;
  /** Builds the reconciler, given how a job that ended re-queues its key. */
  reconciler: (enqueue: (key: string) => void) => Reconciler;
  watches: Watches;
}

/**
 * Starts a controller whose reconciles start jobs (Backup, Restore): a job outlives the
 * reconcile that started it and re-queues its key when it ends.
 */
export function startJobController(deps: ControllerDeps, o: JobControllerOptions): Controller {
  // The controller exists before any job can end, so the late reference is safe.
  const reconciler = o.reconciler((key) => controller.enqueue(key));
  const controller = startController(deps, { name: o.name, reconciler, watches: o.watches });
  return controller;
}
