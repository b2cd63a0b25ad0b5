/**
 * Pure decisions of the Backup controller: from the Backup, what it depends on, and whether a
 * job for it runs in this process, the one next step.
 *
 * Invariants:
 * - A terminal phase (Completed, Failed) never runs again; Completed only ever comes from the
 *   engine's success (or, after a crash, from the manifest it wrote last, if it is this
 *   Backup's: key_owner.ts).
 * - The key is deterministic (creation time + uid prefix by default), and once recorded in
 *   status.path it is reused. Storage never overwrites, so a retry writes the key again only
 *   after it removed its own leftovers there.
 * - A Backup Running in status but not in this process was interrupted (crash, leader change):
 *   the interruption is recorded first, then the Backup is retried while interruptions <
 *   maxAttempts, then Failed (RetriesExhausted).
 * - A storage failure is not an interruption: the job puts the Backup back to Pending
 *   (reason StorageFailed, status.nextRetryAt) with a capped exponential backoff while the
 *   storage has been failing for less than the retry window (storageRetry), so an outage of
 *   minutes does not fail it.
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import type { Database } from "../../crds/database.ts";
import { renderBackupKey, TemplateError } from "../../backup/templates.ts";
import type { BackupReason } from "./status.ts";
import { parseGoDuration } from "../../lib/duration.ts";
import { databaseReady } from "../services/readiness.ts";

/** How many interrupted runs (restarts, crashes, leader changes) fail a Backup. */
export const DEFAULT_MAX_ATTEMPTS = 3;
/** How often a Backup waiting for a dependency looks again. */
export const WAIT_RECHECK_MS = 15_000;
/** Delay before the first retry after a storage failure; doubled per failure in a row. */
export const STORAGE_RETRY_BASE_MS = 5_000;
/** The longest delay between two retries after storage failures. */
export const STORAGE_RETRY_MAX_MS = 60_000;
/** `--backup-storage-retry-for`: how long storage failures are retried by default. */
export const DEFAULT_STORAGE_RETRY_FOR_MS = 10 * 60_000;

export interface BackupObservation {
  backup: Backup;
  /** undefined: not found. */
  database: Database | undefined;
  storage: BackupStorage | undefined;
  /** Whether this process runs (or queues) a job for this Backup. */
  runningHere: boolean;
  now: number;
  /** `--backup-max-attempts`: interruptions that fail the Backup. */
  maxAttempts?: number;
}

/** What to run: everything the job needs, decided here. */
export interface BackupTarget {
  key: string;
  clusterName: string;
  databaseName: string;
  storageName: string;
  /** The attempt this start will be (status.attempts + 1). */
  attempt: number;
  /** A previous attempt may have left an incomplete upload or a complete dump at the key. */
  retry: boolean;
}

export type BackupAction =
  | { kind: "none" }
  | { kind: "requeue"; afterMs: number }
  | { kind: "delete" }
  | { kind: "wait"; reason: BackupReason; message: string; afterMs: number }
  | { kind: "fail"; reason: BackupReason; message: string }
  /** Record that the run was cut short (status Running, but no job here), then retry. */
  | { kind: "interrupted"; message: string }
  | { kind: "start"; target: BackupTarget }
  /**
   * A Failed Backup whose runs wrote to `key`: remove what they left there (this Backup's
   * objects only, and incomplete uploads), then record status.leftoversRemovedAt.
   */
  | { kind: "removeLeftovers"; key: string };

/** The uid-derived run id: stable for this Backup across retries and restarts. */
export function runId(b: Backup): string {
  return (b.metadata.uid ?? b.metadata.name).replace(/-/g, "").slice(0, 8);
}

function storageReady(s: BackupStorage): boolean {
  return s.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
}

export function planBackup(o: BackupObservation): BackupAction {
  const b = o.backup;
  const phase = b.status?.phase;
  if (b.metadata.deletionTimestamp) return { kind: "none" };
  if (phase === "Completed") return planTtl(b, o.now);
  if (phase === "Failed") return planLeftovers(o);
  if (o.runningHere) return { kind: "none" };
  if (phase === "Running") {
    return {
      kind: "interrupted",
      message: "Interrupted: the operator stopped while the backup ran (a restart, crash or " +
        "leader change); it will be retried with the same key",
    };
  }
  const interruptions = b.status?.interruptions ?? 0;
  const max = o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (interruptions >= max) {
    return {
      kind: "fail",
      reason: "RetriesExhausted",
      message: `Backup was interrupted ${interruptions} times (operator restarts, crashes or ` +
        `leader changes): giving up (--backup-max-attempts ${max})`,
    };
  }
  const backoff = storageBackoff(b, o.now);
  if (backoff) return backoff;
  const wait = dependencies(o);
  if (wait) return wait;
  return planStart(o, o.database!, o.storage!);
}

/**
 * A Failed Backup cleans its key once, level-triggered: whichever way it failed (a stall, a
 * dump error, the retries given up after crashes), and however the process ended meanwhile,
 * the next reconcile of the Failed Backup does it. Never while a run of it is still here.
 */
function planLeftovers(o: BackupObservation): BackupAction {
  const s = o.backup.status;
  if (!s?.path || s.leftoversRemovedAt || o.runningHere || !o.storage) return { kind: "none" };
  return { kind: "removeLeftovers", key: s.path };
}

/** Everything is Ready: start, at the recorded key or at the one the templates render. */
function planStart(o: BackupObservation, db: Database, storage: BackupStorage): BackupAction {
  const b = o.backup;
  const attempts = b.status?.attempts ?? 0;
  const clusterName = db.spec.clusterRef.name;
  const databaseName = db.status!.databaseName!;
  let key = b.status?.path;
  if (!key) {
    try {
      key = renderBackupKey({
        pathTemplate: storage.spec.pathTemplate,
        filenameTemplate: b.spec.filenameTemplate,
        clusterName,
        databaseName,
        namespace: b.metadata.namespace ?? "",
        runId: runId(b),
        format: b.spec.format,
        compression: b.spec.compression?.algorithm,
        at: new Date(b.metadata.creationTimestamp ?? o.now),
      });
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      return { kind: "fail", reason: "InvalidTemplate", message: e.message };
    }
  }
  return {
    kind: "start",
    target: {
      key,
      clusterName,
      databaseName,
      storageName: storage.metadata.name,
      attempt: attempts + 1,
      retry: attempts > 0,
    },
  };
}

function dependencies(o: BackupObservation): BackupAction | undefined {
  const b = o.backup;
  const wait = (reason: BackupReason, message: string): BackupAction => ({
    kind: "wait",
    reason,
    message,
    afterMs: WAIT_RECHECK_MS,
  });
  if (!o.database) {
    return wait(
      "DatabaseNotFound",
      `Waiting for Database "${b.spec.databaseRef.name}": it does not exist in namespace ` +
        `"${b.metadata.namespace}"`,
    );
  }
  if (!databaseReady(o.database)) {
    return wait(
      "DatabaseNotReady",
      `Waiting for Database "${b.spec.databaseRef.name}" to be Ready` +
        (o.database.status?.message ? `: ${o.database.status.message}` : ""),
    );
  }
  if (!o.storage) {
    return wait(
      "StorageNotFound",
      `Waiting for BackupStorage "${b.spec.storageRef.name}": it does not exist`,
    );
  }
  // A Backup retrying storage failures keeps trying (its retry window bounds it) rather than
  // waiting without end for a probe that may not come for minutes.
  if (!storageReady(o.storage) && !retryingStorage(b)) {
    const why = o.storage.status?.message;
    return wait(
      "StorageNotReady",
      `Waiting for BackupStorage "${b.spec.storageRef.name}" to be Ready${why ? `: ${why}` : ""}`,
    );
  }
  return undefined;
}

function retryingStorage(b: Backup): boolean {
  const ready = b.status?.conditions?.find((c) => c.type === "Ready");
  return b.status?.phase === "Pending" &&
    (ready?.reason === "StorageFailed" || ready?.reason === "StorageStalled");
}

/** After a storage failure: wait until status.nextRetryAt. */
function storageBackoff(b: Backup, now: number): BackupAction | undefined {
  if (!retryingStorage(b)) return undefined;
  const due = b.status?.nextRetryAt ? Date.parse(b.status.nextRetryAt) : NaN;
  return due > now ? { kind: "requeue", afterMs: due - now } : undefined;
}

/** Options of {@link storageRetry}. */
export interface StorageRetryInput {
  /** The Backup's status before the failed run's outcome is recorded. */
  status: Backup["status"];
  failedAt: number;
  /** When the failed run started. */
  startedAt: number;
  /** `--backup-storage-retry-for`. */
  retryForMs: number;
}

/** Whether a run that failed on the storage is retried, and when. */
export type StorageRetry =
  | { retry: true; since: number; failures: number; nextRetryAt: number }
  | { retry: false; since: number; failures: number };

/**
 * Storage failures are retried while the storage has been failing for less than the retry
 * window: from the first failure of the outage, after delays of 5 s, 10 s, 20 s, ... up to
 * 60 s, the last one cut to the window's end. A run that went on for longer than the window
 * before it failed saw the storage work: its failure starts a new outage.
 */
export function storageRetry(o: StorageRetryInput): StorageRetry {
  const prev = o.status?.storageFailingSince ? Date.parse(o.status.storageFailingSince) : NaN;
  const continues = !Number.isNaN(prev) && o.failedAt - o.startedAt < o.retryForMs;
  const since = continues ? prev : o.failedAt;
  const failures = (continues ? o.status?.storageFailures ?? 0 : 0) + 1;
  if (o.failedAt - since >= o.retryForMs) return { retry: false, since, failures };
  const delay = Math.min(STORAGE_RETRY_MAX_MS, STORAGE_RETRY_BASE_MS * 2 ** (failures - 1));
  const nextRetryAt = Math.min(o.failedAt + delay, since + o.retryForMs);
  return { retry: true, since, failures, nextRetryAt };
}

function planTtl(b: Backup, now: number): BackupAction {
  const ttl = b.spec.ttlAfterCompletion;
  const completedAt = b.status?.completedAt ? Date.parse(b.status.completedAt) : NaN;
  if (!ttl || Number.isNaN(completedAt)) return { kind: "none" };
  const due = completedAt + parseGoDuration(ttl);
  return due <= now ? { kind: "delete" } : { kind: "requeue", afterMs: due - now };
}
