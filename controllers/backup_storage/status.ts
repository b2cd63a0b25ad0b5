/**
 * Pure status of a BackupStorage from the outcome of one probe.
 */
import type { Backup } from "../../crds/backup.ts";
import type {
  BackupStorage,
  BackupStorageStatus,
  StorageProvider,
} from "../../crds/backup_storage.ts";
import { setCondition } from "../runtime/conditions.ts";
import { kubeTime } from "../../lib/time.ts";

/** Reasons of the Ready condition, declared once. */
export type StorageReadyReason =
  | "Ready"
  | "BucketNotFound"
  | "AccessDenied"
  | "CredentialsMissing"
  | "InvalidConfiguration"
  | "Unreachable"
  | "Unavailable"
  | "StorageError";

/** What one probe found. */
export type ProbeOutcome =
  | { ok: true }
  | { ok: false; reason: StorageReadyReason; message: string };

/** How long until the next probe: a healthy location is checked less often. */
export const PROBE_INTERVAL_MS = 5 * 60_000;
export const PROBE_RETRY_MS = 60_000;
/**
 * The shortest time between a probe and one that a Backup's outcome asks for
 * ({@link reprobeDelay}): however many Backups fail or complete on a storage, it is probed at
 * most once per this interval on their account.
 */
export const REPROBE_MIN_GAP_MS = 15_000;

/** Maps a storage failure reason to the Ready reason (unknown ones become StorageError). */
export function probeReason(reason: string | undefined): StorageReadyReason {
  switch (reason) {
    case "BucketNotFound":
    case "AccessDenied":
    case "CredentialsMissing":
    case "InvalidConfiguration":
    case "Unreachable":
    case "Unavailable":
      return reason;
    default:
      return "StorageError";
  }
}

/** The status after a probe at `now`. */
export function storageStatus(
  obj: BackupStorage,
  outcome: ProbeOutcome,
  opts: { provider: StorageProvider | undefined; now: number },
): BackupStorageStatus {
  const generation = obj.metadata.generation;
  const message = outcome.ok
    ? `Reachable and writable (${opts.provider ?? "unknown provider"})`
    : outcome.message;
  const conditions = setCondition(obj.status?.conditions, {
    type: "Ready",
    status: outcome.ok,
    reason: outcome.ok ? "Ready" : outcome.reason,
    message,
  }, { generation, now: new Date(opts.now) });
  return {
    phase: outcome.ok ? "Ready" : "Failed",
    ...(opts.provider ? { provider: opts.provider } : {}),
    message,
    lastValidation: kubeTime(opts.now),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions,
  };
}

/** Pure: whether the storage is usable now (Ready for its current generation). */
export function storageReady(obj: BackupStorage): boolean {
  const ready = obj.status?.conditions?.find((c) => c.type === "Ready");
  return ready?.status === "True";
}

function storageFailure(b: Backup | undefined): boolean {
  const reason = b?.status?.conditions?.find((c) => c.type === "Ready")?.reason;
  return reason === "StorageFailed" || reason === "StorageStalled";
}

/**
 * Pure: whether the change of Backup `b` (from `old`) says that `storage`'s Ready condition is
 * out of date, so it is probed soon rather than at its next scheduled probe (5 minutes after a
 * success): a Ready storage on which the Backup has just failed again (a new storage failure:
 * its count or its outage changed), or a storage that is not Ready while the Backup has just
 * completed on it. Returns in how many ms to probe, or undefined for no probe. Not for the
 * initial list (`old` undefined): a restart probes every storage anyway. At the earliest
 * {@link REPROBE_MIN_GAP_MS} after the last probe, which bounds the probes that many Backups
 * can cause.
 */
export function reprobeDelay(
  storage: BackupStorage | undefined,
  b: Backup,
  old: Backup | undefined,
  now: number,
): number | undefined {
  if (!storage || !old || storage.metadata.deletionTimestamp) return undefined;
  const contradicted = storageReady(storage)
    ? storageFailure(b) &&
      (!storageFailure(old) || b.status?.storageFailures !== old.status?.storageFailures ||
        b.status?.storageFailingSince !== old.status?.storageFailingSince)
    : b.status?.phase === "Completed" && old.status?.phase !== "Completed";
  if (!contradicted) return undefined;
  const last = Date.parse(storage.status?.lastValidation ?? "");
  return Number.isNaN(last) ? 0 : Math.max(0, last + REPROBE_MIN_GAP_MS - now);
}
