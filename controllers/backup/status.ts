/**
 * Pure status transitions of a Backup. Every function takes the latest object and returns the
 * whole next status; the reconciler writes it only when it changed.
 */
import { humanDuration, humanSize } from "../../lib/format.ts";
import type { Backup, BackupFormat, BackupStatus } from "../../crds/backup.ts";
import type { BackupManifest } from "../../backup/manifest.ts";
import { setCondition } from "../runtime/conditions.ts";
import { pauseStateOf, withPause } from "../runtime/pause.ts";
import { jobEnd, kubeTime } from "../../lib/time.ts";

/** Reasons of a Backup's Ready condition, declared once. */
export type BackupReason =
  | "Completed"
  | "Running"
  | "WaitingForSlot"
  | "Interrupted"
  | "DatabaseNotFound"
  | "DatabaseNotReady"
  | "StorageNotFound"
  | "StorageNotReady"
  | "NamespaceNotAllowed"
  | "ClusterNotReady"
  | "InvalidTemplate"
  | "RetriesExhausted"
  /** Another writer's object (or manifest) is at the key; stored objects are never overwritten. */
  | "ObjectExists"
  // The engine's reasons (backup/errors.ts).
  | "DumpFailed"
  | "StorageFailed"
  | "Aborted"
  | "ToolNotFound"
  | "ToolTooOld"
  | "InvalidOptions"
  | "SigningFailed"
  /** The storage stopped taking bytes or answering (`--backup-stall-timeout`); retried. */
  | "StorageStalled";

type Phase = NonNullable<BackupStatus["phase"]>;

function withReady(
  b: Backup,
  status: Omit<BackupStatus, "conditions" | "observedGeneration">,
  c: { ok: boolean; reason: BackupReason; message: string; now: number },
): BackupStatus {
  const generation = b.metadata.generation;
  return {
    ...status,
    message: c.message,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions: withPause(
      setCondition(b.status?.conditions, {
        type: "Ready",
        status: c.ok,
        reason: c.reason,
        message: c.message,
      }, { generation, now: new Date(c.now) }),
      pauseStateOf(b),
      { generation, now: new Date(c.now) },
    ),
  };
}

/** Keeps what earlier attempts recorded (attempts, path, ...), drops progress and the retry time. */
function base(b: Backup, phase: Phase): BackupStatus {
  const { progress: _p, nextRetryAt: _n, ...rest } = b.status ?? {};
  return { ...rest, phase };
}

/** Pending: waiting for a dependency (Database, storage, cluster) or a slot. */
export function pendingStatus(
  b: Backup,
  o: { reason: BackupReason; message: string; now: number },
): BackupStatus {
  return withReady(b, base(b, "Pending"), { ok: false, ...o });
}

/** Ordinal for humans: 1st, 2nd, 3rd, 4th, 11th, 21st. */
export function ordinal(n: number): string {
  const t = n % 100;
  const s = t >= 11 && t <= 13 ? "th" : ["th", "st", "nd", "rd"][n % 10] ?? "th";
  return `${n}${s}`;
}

/** The limit of a DBCluster or BackupStorage a queued Backup waits for (backup/limiter.ts). */
export interface HeldLimit {
  limit: "cluster" | "storage";
  name: string;
  running: number;
}

/**
 * Pending in the limiter's queue at `position` (1-based); `blockedBy` when its DBCluster's or
 * BackupStorage's own limit is full, which the message then names.
 */
export function queuedStatus(
  b: Backup,
  o: { position: number; now: number; blockedBy?: HeldLimit | undefined },
): BackupStatus {
  const held = o.blockedBy;
  const kind = held?.limit === "storage" ? "BackupStorage" : "DBCluster";
  const flag = held?.limit === "storage" ? "per-storage" : "per-cluster";
  const message = held
    ? `Waiting for a slot on ${kind} "${held.name}" (${held.running} running there, ` +
      `--max-concurrent-backups-${flag}; ${ordinal(o.position)} in queue)`
    : `Waiting for a backup slot (${ordinal(o.position)} in queue)`;
  return pendingStatus(b, { reason: "WaitingForSlot", message, now: o.now });
}

/** Running: attempt `attempt` started at `now`, writing to `key`. */
export function runningStatus(
  b: Backup,
  o: {
    attempt: number;
    key: string;
    clusterName: string;
    databaseName: string;
    storageName: string;
    format: BackupFormat;
    now: number;
  },
): BackupStatus {
  const { completedAt: _c, duration: _d, ...rest } = base(b, "Running");
  return withReady(b, {
    ...rest,
    attempts: o.attempt,
    path: o.key,
    clusterName: o.clusterName,
    databaseName: o.databaseName,
    storageName: o.storageName,
    format: o.format,
    startedAt: kubeTime(o.now),
    progress: { bytes: 0, uncompressedBytes: 0, updatedAt: kubeTime(o.now) },
  }, {
    ok: false,
    reason: "Running",
    message: o.attempt > 1
      ? `Backing up to ${o.key} (attempt ${o.attempt})`
      : `Backing up to ${o.key}`,
    now: o.now,
  });
}

/** Running, with bytes so far. Undefined (no write) unless the Backup is still Running. */
export function progressStatus(
  b: Backup,
  o: { bytes: number; uncompressedBytes: number; now: number },
): BackupStatus | undefined {
  if (b.status?.phase !== "Running") return undefined;
  return {
    ...b.status,
    progress: {
      bytes: o.bytes,
      uncompressedBytes: o.uncompressedBytes,
      updatedAt: kubeTime(o.now),
    },
  };
}

/** Completed from the manifest the engine wrote last (the proof it succeeded). */
export function completedStatus(
  b: Backup,
  o: { manifest: BackupManifest; now: number },
): BackupStatus {
  const m = o.manifest;
  return withReady(b, {
    ...base(b, "Completed"),
    path: m.key,
    size: humanSize(m.compressedSize),
    sizeBytes: m.compressedSize,
    uncompressedBytes: m.uncompressedSize,
    sha256: m.sha256,
    format: m.format,
    ...(m.counts
      ? { counts: { tables: m.counts.tables, rows: m.counts.rows, digest: m.counts.digest } }
      : {}),
    pgDumpVersion: m.pgDumpVersion,
    serverVersion: m.serverVersion,
    duration: humanDuration(m.durationMs),
    startedAt: b.status?.startedAt ?? kubeTime(Date.parse(m.startedAt)),
    completedAt: kubeTime(Date.parse(m.completedAt) || o.now),
  }, {
    ok: true,
    reason: "Completed",
    message: `Backed up to ${m.key} (${humanSize(m.compressedSize)})`,
    now: o.now,
  });
}

/** Failed for good, with a reason and a redacted message. */
export function failedStatus(
  b: Backup,
  o: { reason: BackupReason; message: string; now: number },
): BackupStatus {
  const running = b.status?.phase === "Running";
  return withReady(b, {
    ...base(b, "Failed"),
    ...jobEnd({ startedAt: b.status?.startedAt, running, now: o.now }),
  }, { ok: false, ...o });
}

/** Back to Pending after the operator stopped mid-backup, counted: the next leader retries. */
export function interruptedStatus(b: Backup, o: { message: string; now: number }): BackupStatus {
  const status = pendingStatus(b, { reason: "Interrupted", ...o });
  return { ...status, interruptions: (b.status?.interruptions ?? 0) + 1 };
}

/** What {@link storageRetryStatus} and {@link storageFailedStatus} record. */
export interface StorageOutage {
  /** StorageStalled when the run stalled; default StorageFailed. */
  reason?: "StorageFailed" | "StorageStalled";
  /** The storage failure, e.g. "Cannot upload the backup: Unreachable: ...". */
  detail: string;
  since: number;
  failures: number;
  retryForMs: number;
  now: number;
}

/** Pending after a storage failure, until `nextRetryAt`. */
export function storageRetryStatus(
  b: Backup,
  o: StorageOutage & { nextRetryAt: number },
): BackupStatus {
  const status = pendingStatus(b, {
    reason: o.reason ?? "StorageFailed",
    message: `${o.detail}; retrying at ${kubeTime(o.nextRetryAt)} (the storage has been ` +
      `failing for ${humanDuration(o.now - o.since)}; retried for up to ` +
      `${humanDuration(o.retryForMs)}, then the Backup fails)`,
    now: o.now,
  });
  return { ...status, ...outageFields(o), nextRetryAt: kubeTime(o.nextRetryAt) };
}

/** Failed after the storage kept failing for the whole retry window. */
export function storageFailedStatus(b: Backup, o: StorageOutage): BackupStatus {
  const retried = o.failures > 1
    ? `gave up after retrying for ${humanDuration(o.now - o.since)} (${o.failures} failed ` +
      `runs; --backup-storage-retry-for ${humanDuration(o.retryForMs)})`
    : "not retried (--backup-storage-retry-for 0s)";
  const status = failedStatus(b, {
    reason: o.reason ?? "StorageFailed",
    message: `${o.detail}; ${retried}`,
    now: o.now,
  });
  return { ...status, ...outageFields(o) };
}

function outageFields(o: StorageOutage): Partial<BackupStatus> {
  return { storageFailures: o.failures, storageFailingSince: kubeTime(o.since) };
}
