/**
 * Pure decisions of the Backup controller: from the Backup, what it depends on, and whether a
 * job for it runs in this process, the one next step.
 *
 * Invariants:
 * - A terminal phase (Completed, Failed) never runs again; Completed only ever comes from the
 *   engine's success (or, after a crash, from the manifest it wrote last).
 * - The key is deterministic (creation time + uid prefix), and once recorded in status.path it
 *   is reused, so a retry after a crash overwrites the same key.
 * - A Backup Running in status but not in this process was interrupted (crash, leader change):
 *   it is retried while attempts < maxAttempts, then Failed.
 * - A Backup put back to Pending by a storage failure (reason StorageFailed) is retried the
 *   same way, after a backoff, so a storage outage of a few seconds does not fail it.
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import type { Database } from "../../crds/database.ts";
import { renderBackupKey, TemplateError } from "../../backup/templates.ts";
import type { BackupReason } from "./status.ts";

/** How many times a backup is started before an interruption counts as failure. */
export const DEFAULT_MAX_ATTEMPTS = 3;
/** How often a Backup waiting for a dependency looks again. */
export const WAIT_RECHECK_MS = 15_000;
/**
 * Delay before retrying after a storage failure, doubled per attempt (10 s, 20 s, 40 s, ...),
 * counted from the start of the failed attempt.
 */
export const STORAGE_RETRY_BASE_MS = 10_000;

export interface BackupObservation {
  backup: Backup;
  /** undefined: not found. */
  database: Database | undefined;
  storage: BackupStorage | undefined;
  /** Whether this process runs (or queues) a job for this Backup. */
  runningHere: boolean;
  now: number;
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
  | { kind: "start"; target: BackupTarget };

/** The uid-derived run id: stable for this Backup across retries and restarts. */
export function runId(b: Backup): string {
  return (b.metadata.uid ?? b.metadata.name).replace(/-/g, "").slice(0, 8);
}

/** Whether a Database is usable: Ready, with its PostgreSQL name known. */
export function databaseReady(d: Database): boolean {
  const ready = d.status?.conditions?.find((c) => c.type === "Ready")?.status === "True" ||
    d.status?.phase === "Ready";
  return ready && !!d.status?.databaseName && !d.metadata.deletionTimestamp;
}

function storageReady(s: BackupStorage): boolean {
  return s.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
}

export function planBackup(o: BackupObservation): BackupAction {
  const b = o.backup;
  const phase = b.status?.phase;
  if (b.metadata.deletionTimestamp) return { kind: "none" };
  if (phase === "Completed") return planTtl(b, o.now);
  if (phase === "Failed") return { kind: "none" };
  if (o.runningHere) return { kind: "none" };
  const attempts = b.status?.attempts ?? 0;
  const max = o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (attempts >= max) {
    return {
      kind: "fail",
      reason: "RetriesExhausted",
      message: `Backup was interrupted ${attempts} times (operator restarts or leader ` +
        `changes): giving up after ${max} attempts`,
    };
  }
  const backoff = storageBackoff(b, o.now);
  if (backoff) return backoff;
  const wait = dependencies(o);
  if (wait) return wait;
  const db = o.database!;
  const storage = o.storage!;
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
      retry: attempts > 0 || phase === "Running",
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
  if (!storageReady(o.storage)) {
    const why = o.storage.status?.message;
    return wait(
      "StorageNotReady",
      `Waiting for BackupStorage "${b.spec.storageRef.name}" to be Ready${why ? `: ${why}` : ""}`,
    );
  }
  return undefined;
}

/** After a storage failure: wait until the backoff from the failed attempt's start passed. */
function storageBackoff(b: Backup, now: number): BackupAction | undefined {
  const ready = b.status?.conditions?.find((c) => c.type === "Ready");
  if (b.status?.phase !== "Pending" || ready?.reason !== "StorageFailed") return undefined;
  const startedAt = b.status.startedAt ? Date.parse(b.status.startedAt) : NaN;
  if (Number.isNaN(startedAt)) return undefined;
  const attempts = Math.max(1, b.status.attempts ?? 1);
  const due = startedAt + STORAGE_RETRY_BASE_MS * 2 ** (attempts - 1);
  return due > now ? { kind: "requeue", afterMs: due - now } : undefined;
}

function planTtl(b: Backup, now: number): BackupAction {
  const ttl = b.spec.ttlAfterCompletion;
  const completedAt = b.status?.completedAt ? Date.parse(b.status.completedAt) : NaN;
  if (!ttl || Number.isNaN(completedAt)) return { kind: "none" };
  const due = completedAt + parseGoDuration(ttl);
  return due <= now ? { kind: "delete" } : { kind: "requeue", afterMs: due - now };
}

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Milliseconds of a Go duration (validated at admission); throws on bad input. */
export function parseGoDuration(text: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  if (!text || end !== text.length) {
    throw new Error(`Invalid duration "${text}": use a duration such as 30s, 5m or 1h30m`);
  }
  return Math.round(total);
}
