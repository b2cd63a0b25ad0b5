/**
 * One backup run, started by the reconciler and owned by the JobRunner: wait for a slot,
 * record the attempt, run the engine, record the outcome. Status writes go through
 * updateStatus (409-safe); the engine's errors are already redacted.
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import { BackupError } from "../../backup/errors.ts";
import {
  type BackupManifest,
  manifestKey,
  parseManifest,
  signManifest,
} from "../../backup/manifest.ts";
import { parseServerVersionNum } from "../../backup/pg_tools.ts";
import { runBackup } from "../../backup/pipeline.ts";
import type { ObjectStore } from "../../storage/store.ts";
import { StorageError } from "../../storage/store.ts";
import type { ResolvedCluster } from "../dbcluster/resolver.ts";
import { errorMessage } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { updateStatus } from "../runtime/objects.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import { openStore } from "../backup_storage/access.ts";
import { openJobConnection } from "./connection.ts";
import type { BackupTarget } from "./plan.ts";
import { acquireSlot, type BackupShared } from "./shared.ts";
import { JobStopped } from "./runner.ts";
import {
  type BackupReason,
  completedStatus,
  failedStatus,
  interruptedStatus,
  pendingStatus,
  progressStatus,
  queuedStatus,
  runningStatus,
} from "./status.ts";

/** How often progress reaches the status while running. */
export const PROGRESS_INTERVAL_MS = 5000;

export interface BackupJob {
  backup: Backup;
  target: BackupTarget;
  storage: BackupStorage;
  cluster: ResolvedCluster;
  toolDirs: string[] | undefined;
  env: Record<string, string | undefined>;
  /** `--backup-max-attempts`: a storage failure before the last attempt is retried. */
  maxAttempts: number;
  /** `--backup-gzip-workers`: gzip threads per backup (0: on the main thread). */
  gzipWorkers?: number;
}

export async function runBackupJob(
  deps: ControllerDeps,
  shared: BackupShared,
  job: BackupJob,
  signal: AbortSignal,
): Promise<void> {
  const { backup: b, target } = job;
  const log = deps.logger.with({
    backup: `${b.metadata.namespace}/${b.metadata.name}`,
    key: target.key,
  });
  const write = (compute: (latest: Backup) => Backup["status"] | undefined) =>
    updateStatus(deps.client, BackupKind, b, compute);
  const now = () => deps.clock.now();
  let lease;
  try {
    lease = await acquireSlot(shared.limiter, {
      id: `backup/${b.metadata.namespace}/${b.metadata.name}`,
      cluster: target.clusterName,
      signal,
      clock: deps.clock,
      onWaiting: async (position) => {
        await write((l) => queuedStatus(l, { position, now: now() }));
      },
    });
  } catch (e) {
    await onStopped(deps, shared, job, signal, e, log);
    return;
  }
  try {
    const latest = await deps.client.find<Backup>(
      BackupKind,
      b.metadata.namespace,
      b.metadata.name,
    );
    if (!latest || latest.metadata.uid !== b.metadata.uid || isTerminal(latest)) return;
    await updateStatus(deps.client, BackupKind, latest, (l) =>
      runningStatus(l, {
        ...target,
        attempt: target.attempt,
        format: b.spec.format ?? "plain",
        now: now(),
      }));
    deps.recorder.emit(
      latest,
      "Normal",
      "Started",
      `Backing up database "${target.databaseName}" to ${target.key}` +
        (target.attempt > 1 ? ` (attempt ${target.attempt})` : ""),
    );
    await dumpAndRecord(deps, shared, { ...job, backup: latest }, signal, log);
  } finally {
    lease.release();
  }
}

async function dumpAndRecord(
  deps: ControllerDeps,
  shared: BackupShared,
  job: BackupJob,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  const { backup: b, target } = job;
  let store: ObjectStore | undefined;
  const progress = new ProgressWriter(deps, b);
  try {
    store = await openStore(deps.client, job.storage, { env: job.env, logger: log });
    if (target.retry) {
      // A previous attempt may have finished the dump and the manifest, then died before
      // recording it: the manifest proves success, so record it rather than dump again.
      const manifest = await readManifest(store, target.key);
      if (manifest) {
        log.info("Backup found complete in storage after an interruption");
        await succeed(deps, shared, b, manifest);
        return;
      }
      await store.abortIncompleteUploads?.(target.key);
    }
    const versionNum = job.cluster.cluster.status?.versionNum;
    await using conn = await openJobConnection(job.cluster.server, target.databaseName);
    const result = await runBackup({
      connection: conn.connection,
      store,
      key: target.key,
      format: b.spec.format ?? "plain",
      compressionLevel: b.spec.compression?.level ?? 6,
      signal,
      logger: log,
      clock: deps.clock,
      progressIntervalMs: PROGRESS_INTERVAL_MS,
      onProgress: (p) => progress.push(p.compressedBytes, p.uncompressedBytes),
      ...(job.toolDirs ? { toolDirs: job.toolDirs } : {}),
      ...(job.gzipWorkers !== undefined ? { gzipWorkers: job.gzipWorkers } : {}),
      ...(versionNum ? { serverVersion: parseServerVersionNum(versionNum) } : {}),
      metadata: {
        "dbtether-namespace": b.metadata.namespace ?? "",
        "dbtether-backup": b.metadata.name,
      },
      source: {
        namespace: b.metadata.namespace ?? "",
        backup: b.metadata.name,
        backupUid: b.metadata.uid ?? "",
        databaseResource: b.spec.databaseRef.name,
        cluster: target.clusterName,
      },
      signManifest: async (m) => signManifest(m, await shared.keyring.signingKey()),
    });
    await progress.settle();
    await succeed(deps, shared, b, result.manifest);
  } catch (e) {
    await progress.settle();
    // The SDK aborts its multipart upload on failure, but not when the server was gone at that
    // moment; try once more now (the next attempt also does, before it uploads).
    if (store && storageFailure(e) && !signal.aborted) {
      await store.abortIncompleteUploads?.(target.key).catch(() => 0);
    }
    await onStopped(deps, shared, job, signal, e, log);
  } finally {
    await store?.close().catch(() => {});
  }
}

async function succeed(
  deps: ControllerDeps,
  shared: BackupShared,
  b: Backup,
  manifest: BackupManifest,
): Promise<void> {
  const now = deps.clock.now();
  await updateStatus(
    deps.client,
    BackupKind,
    b,
    (l) => isTerminal(l) ? undefined : completedStatus(l, { manifest, now }),
  );
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

/** Records why the job ended without success: interrupted, deleted, or failed. */
async function onStopped(
  deps: ControllerDeps,
  shared: BackupShared,
  job: BackupJob,
  signal: AbortSignal,
  e: unknown,
  log: Logger,
): Promise<void> {
  const b = job.backup;
  const now = deps.clock.now();
  const stopped = signal.aborted && signal.reason instanceof JobStopped ? signal.reason : undefined;
  if (stopped?.why === "deleted") return;
  if (stopped?.why === "shutdown") {
    log.info("Backup interrupted by shutdown; the next leader retries it");
    await updateStatus(
      deps.client,
      BackupKind,
      b,
      (l) =>
        isTerminal(l) ? undefined : interruptedStatus(l, {
          message: `Interrupted: ${stopped.message}; will be retried with the same key`,
          now,
        }),
    ).catch((err) => log.warn("Cannot record the interruption", { error: err }));
    return;
  }
  const { reason, message } = failure(e);
  const attempt = job.target.attempt;
  if (storageFailure(e) && attempt < job.maxAttempts) {
    log.warn("Backup upload failed; it will be retried", { reason, error: message, attempt });
    await updateStatus(
      deps.client,
      BackupKind,
      b,
      (l) =>
        isTerminal(l) ? undefined : pendingStatus(l, {
          reason: "StorageFailed",
          message: `${message}; will be retried with the same key (attempt ${attempt} of ` +
            `${job.maxAttempts})`,
          now,
        }),
    );
    deps.recorder.emit(b, "Warning", "Retrying", message);
    return;
  }
  log.warn("Backup failed", { reason, error: message });
  await updateStatus(
    deps.client,
    BackupKind,
    b,
    (l) => isTerminal(l) ? undefined : failedStatus(l, { reason, message, now }),
  );
  shared.metrics.failures.inc({ reason });
  deps.recorder.emit(b, "Warning", "Failed", message);
}

/**
 * Whether `e` is the storage's failure (unreachable, a server error, the server going away
 * mid-upload) rather than pg_dump's or a bad configuration: worth retrying.
 */
function storageFailure(e: unknown): boolean {
  const cause = e instanceof BackupError && e.reason === "StorageFailed" ? e.cause : e;
  return cause instanceof StorageError &&
    (cause.reason === "Unreachable" || cause.reason === "StorageError");
}

function failure(e: unknown): { reason: BackupReason; message: string } {
  if (e instanceof BackupError) return { reason: e.reason, message: e.message };
  if (e instanceof StorageError) {
    return { reason: "StorageFailed", message: `Cannot use the backup storage: ${e.message}` };
  }
  return { reason: "DumpFailed", message: `Backup failed: ${errorMessage(e)}` };
}

function isTerminal(b: Backup): boolean {
  return b.status?.phase === "Completed" || b.status?.phase === "Failed";
}

async function readManifest(store: ObjectStore, key: string) {
  try {
    const text = await new Response(await store.get(manifestKey(key))).text();
    return parseManifest(text);
  } catch (e) {
    if (e instanceof StorageError && e.reason === "NotFound") return undefined;
    // An unreadable manifest is not proof of success: dump again.
    if (!(e instanceof StorageError)) return undefined;
    throw e;
  }
}

/** Writes progress to status without overlapping writes; the latest value wins. */
class ProgressWriter {
  #inFlight: Promise<void> | undefined;
  #pending: { bytes: number; raw: number } | undefined;
  constructor(private readonly deps: ControllerDeps, private readonly b: Backup) {}

  push(bytes: number, raw: number): void {
    this.#pending = { bytes, raw };
    if (!this.#inFlight) this.#inFlight = this.#drain();
  }

  async #drain(): Promise<void> {
    while (this.#pending) {
      const p = this.#pending;
      this.#pending = undefined;
      await updateStatus(
        this.deps.client,
        BackupKind,
        this.b,
        (l) =>
          progressStatus(l, {
            bytes: p.bytes,
            uncompressedBytes: p.raw,
            now: this.deps.clock.now(),
          }),
      )
        .catch(() => {});
    }
    this.#inFlight = undefined;
  }

  /** Waits for the last progress write, so the final status is written after it. */
  async settle(): Promise<void> {
    this.#pending = undefined;
    await this.#inFlight;
  }
}
