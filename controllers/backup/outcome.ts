/**
 * How a backup run ends, recorded: Completed from the manifest, back to Pending after an
 * interruption or a storage failure within the retry window, or Failed with a reason. Every
 * status write goes through updateStatus (409-safe) and never touches a terminal Backup.
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { BackupError, storageDetail } from "../../backup/errors.ts";
import type { BackupManifest } from "../../backup/manifest.ts";
import { StorageError } from "../../storage/store.ts";
import { stallOf } from "../../storage/stall_guard.ts";
import { failureOf } from "../runtime/failure.ts";
import type { Logger } from "../../lib/log.ts";
import { updateStatus } from "../runtime/objects.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import type { RunningJob } from "./job_spec.ts";
import { storageRetry } from "./plan.ts";
import { JobStopped } from "../services/job_runner.ts";
import type { BackupShared } from "../services/backup_shared.ts";
import {
  type BackupReason,
  completedStatus,
  failedStatus,
  interruptedStatus,
  storageFailedStatus,
  storageRetryStatus,
} from "./status.ts";

/** Records the outcomes of backup runs for one controller (its deps, metrics and Events). */
export class BackupOutcomes {
  constructor(private readonly deps: ControllerDeps, readonly shared: BackupShared) {}

  /** Completed from the manifest the engine wrote last (the proof it succeeded). */
  async succeed(b: Backup, manifest: BackupManifest): Promise<void> {
    const { deps, shared } = this;
    const now = deps.clock.now();
    await updateStatus(deps.client, {
      resource: BackupKind,
      object: b,
      compute: (l) => isTerminal(l) ? undefined : completedStatus(l, { manifest, now }),
    });
    const labels = { namespace: b.metadata.namespace ?? "", database: b.spec.databaseRef.name };
    shared.metrics.duration.observe(labels, manifest.durationMs / 1000);
    shared.metrics.sizeBytes.set(labels, manifest.compressedSize);
    shared.metrics.bytesTotal.inc(labels, manifest.compressedSize);
    shared.metrics.lastSuccess.set(labels, Math.floor(now / 1000));
    deps.recorder.emit(
      b,
      "Normal",
      "Completed",
      `Backed up to ${manifest.key} (${manifest.compressedSize} bytes in ${manifest.durationMs} ms)`,
    );
  }

  /** Why the run ended without success: deleted, interrupted, storage, or failed. */
  async stopped(job: RunningJob, o: { signal: AbortSignal; error: unknown; log: Logger }) {
    const { signal, error, log } = o;
    const b = job.backup;
    const now = this.deps.clock.now();
    const stopped = signal.aborted && signal.reason instanceof JobStopped
      ? signal.reason
      : undefined;
    if (stopped?.why === "deleted") return;
    if (stopped?.why === "shutdown") {
      log.info("Backup interrupted by shutdown; the next leader retries it");
      await updateStatus(this.deps.client, {
        resource: BackupKind,
        object: b,
        compute: (l) =>
          isTerminal(l) ? undefined : interruptedStatus(l, {
            message: `Interrupted: ${stopped.message}; will be retried with the same key`,
            now,
          }),
      }).catch((err) => log.warn("Cannot record the interruption", { error: err }));
      return;
    }
    if (storageFailure(error)) {
      const { reason, message } = backupFailure(error);
      const stalled = reason === "StorageStalled" ? "StorageStalled" : "StorageFailed";
      await this.#storageFailed(job, { reason: stalled, detail: message }, log);
      return;
    }
    await this.fail(b, { ...backupFailure(error), log });
  }

  /** Failed for good: status, metric, Event. */
  async fail(b: Backup, f: { reason: BackupReason; message: string; log: Logger }) {
    const { deps } = this;
    f.log.warn("Backup failed", { reason: f.reason, error: f.message });
    const now = deps.clock.now();
    const failed = { reason: f.reason, message: f.message, now };
    await updateStatus(deps.client, {
      resource: BackupKind,
      object: b,
      compute: (l) => isTerminal(l) ? undefined : failedStatus(l, failed),
    });
    this.shared.metrics.failures.inc({ reason: f.reason });
    deps.recorder.emit(b, "Warning", "Failed", f.message);
  }

  /** A run failed on the storage: Pending until the next retry, or Failed after the window. */
  async #storageFailed(
    job: RunningJob,
    f: { reason: "StorageFailed" | "StorageStalled"; detail: string },
    log: Logger,
  ): Promise<void> {
    const { deps } = this;
    const { detail, reason } = f;
    const b = job.backup;
    const now = deps.clock.now();
    let gaveUp = false;
    await updateStatus(deps.client, {
      resource: BackupKind,
      object: b,
      compute: (l) => {
        if (isTerminal(l)) return undefined;
        const decision = storageRetry({
          status: l.status,
          failedAt: now,
          // A stalled run's last stall timeout is not time the storage worked: without this, a
          // window shorter than the timeout would start a new outage with every run.
          startedAt: job.startedAt + (reason === "StorageStalled" ? job.stallTimeoutMs : 0),
          retryForMs: job.storageRetryForMs,
        });
        gaveUp = !decision.retry;
        const outage = { reason, detail, ...decision, retryForMs: job.storageRetryForMs, now };
        return decision.retry
          ? storageRetryStatus(l, { ...outage, nextRetryAt: decision.nextRetryAt })
          : storageFailedStatus(l, outage);
      },
    });
    if (gaveUp) {
      log.warn("Backup failed: the storage kept failing", { error: detail });
      this.shared.metrics.failures.inc({ reason });
      deps.recorder.emit(b, "Warning", "Failed", detail);
      return;
    }
    log.warn("Backup upload failed; it will be retried", { error: detail });
    deps.recorder.emit(b, "Warning", "Retrying", detail);
  }
}

/** The storage failures a Backup retries: it did not answer, said "not now", or failed. */
const RETRIED_STORAGE_REASONS: ReadonlySet<string> = new Set([
  "Unreachable",
  "Unavailable",
  "StorageError",
]);

/**
 * Whether `e` is the storage's failure (unreachable, unavailable or throttling, a server error, the server going away
 * mid-upload) rather than pg_dump's or a bad configuration: worth retrying.
 */
export function storageFailure(e: unknown): boolean {
  if (stallOf(e)) return true;
  const cause = e instanceof BackupError && e.reason === "StorageFailed" ? e.cause : e;
  return cause instanceof StorageError &&
    RETRIED_STORAGE_REASONS.has(cause.reason);
}

/**
 * The reason and message a failed run records. The engine's reasons are Backup reasons as they
 * are; the storage's failures are StorageFailed; anything else (failureOf: a connection error,
 * a bug) is the dump's failure.
 */
export function backupFailure(e: unknown): { reason: BackupReason; message: string } {
  if (e instanceof BackupError) return { reason: e.reason, message: e.message };
  const stall = stallOf(e);
  if (stall) {
    return { reason: "StorageStalled", message: `Cannot use the backup storage: ${stall.message}` };
  }
  if (e instanceof StorageError) {
    return {
      reason: "StorageFailed",
      message: `Cannot use the backup storage: ${storageDetail(e)}`,
    };
  }
  return { reason: "DumpFailed", message: `Backup failed: ${failureOf(e).message}` };
}

/** Completed or Failed: never runs again. */
export function isTerminal(b: Backup): boolean {
  return b.status?.phase === "Completed" || b.status?.phase === "Failed";
}
