/**
 * Pure status of a BackupStorage from the outcome of one probe.
 */
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
