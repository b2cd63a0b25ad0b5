/**
 * Pure decisions of the Restore controller. A Restore is one-shot: Completed and Failed are
 * final. A Restore Running in status but not in this process was interrupted (its single
 * transaction rolled back when the connection died) and is retried a bounded number of times
 * from the source recorded in status.
 */
import type { Backup } from "../../crds/backup.ts";
import type { Database } from "../../crds/database.ts";
import type { Restore } from "../../crds/restore.ts";
import { databaseReady } from "../services/readiness.ts";
import type { RestoreReason } from "./reasons.ts";

export const DEFAULT_MAX_ATTEMPTS = 3;
export const WAIT_RECHECK_MS = 15_000;

/** The dump to read. */
export interface RestoreSource {
  storageName: string;
  path: string;
  backupName?: string;
  format?: "plain" | "custom";
}

export interface RestoreObservation {
  restore: Restore;
  /** undefined: not found. */
  target: Database | undefined;
  /** Backups in the Restore's namespace. */
  backups: readonly Backup[];
  storageExists: (name: string) => boolean;
  runningHere: boolean;
  maxAttempts?: number;
  /**
   * The key of another Restore this process runs into the same database, if any: one restore
   * at a time per target database, since two swaps into one database would race.
   */
  targetBusy?: (where: { clusterName: string; databaseName: string }) => string | undefined;
  /** This Restore's key (`namespace/name`), to tell its own job from another's. */
  key?: string;
}

export interface RestoreTarget {
  source: RestoreSource;
  clusterName: string;
  databaseName: string;
  attempt: number;
  retry: boolean;
}

export type RestoreAction =
  | { kind: "none" }
  | { kind: "wait"; reason: RestoreReason; message: string; afterMs: number }
  | { kind: "fail"; reason: RestoreReason; message: string }
  | { kind: "start"; target: RestoreTarget };

type Found = { source: RestoreSource } | { wait: RestoreReason; message: string } | {
  fail: RestoreReason;
  message: string;
};

/** The newest Completed Backup of Database `name` (by completedAt, then name). */
export function latestBackup(backups: readonly Backup[], database: string): Backup | undefined {
  return backups
    .filter((b) =>
      b.spec.databaseRef.name === database && b.status?.phase === "Completed" && b.status.path
    )
    .sort((a, b) =>
      (b.status?.completedAt ?? "").localeCompare(a.status?.completedAt ?? "") ||
      b.metadata.name.localeCompare(a.metadata.name)
    )[0];
}

function fromBackup(b: Backup): RestoreSource {
  return {
    storageName: b.status?.storageName ?? b.spec.storageRef.name,
    path: b.status!.path!,
    backupName: b.metadata.name,
    ...(b.status?.format ? { format: b.status.format } : {}),
  };
}

/** Where the dump is: recorded in status by an earlier attempt, else from the spec. */
export function findSource(o: RestoreObservation): Found {
  const r = o.restore;
  const st = r.status;
  if (st?.sourcePath && st.storageName) {
    return {
      source: {
        storageName: st.storageName,
        path: st.sourcePath,
        ...(st.sourceBackup ? { backupName: st.sourceBackup } : {}),
      },
    };
  }
  const src = r.spec.source;
  if (src.backupRef) {
    const b = o.backups.find((x) => x.metadata.name === src.backupRef!.name);
    if (!b) {
      return { wait: "BackupNotFound", message: `Waiting for Backup "${src.backupRef.name}"` };
    }
    if (b.status?.phase === "Failed") {
      return {
        fail: "BackupFailed",
        message: `Backup "${b.metadata.name}" failed: nothing to restore`,
      };
    }
    if (b.status?.phase !== "Completed" || !b.status.path) {
      return {
        wait: "BackupNotCompleted",
        message: `Waiting for Backup "${b.metadata.name}" to complete`,
      };
    }
    return { source: fromBackup(b) };
  }
  if (src.latestFrom) {
    const name = src.latestFrom.databaseRef.name;
    const b = latestBackup(o.backups, name);
    if (!b) {
      return {
        wait: "BackupNotFound",
        message: `Waiting for a Completed Backup of Database "${name}"`,
      };
    }
    return { source: fromBackup(b) };
  }
  if (src.path && src.storageRef) {
    return { source: { storageName: src.storageRef.name, path: src.path } };
  }
  return { fail: "InvalidSource", message: "Restore has no usable source" };
}

/** The next step of a live Restore: none, wait, fail, or start a job. */
export function planRestore(o: RestoreObservation): RestoreAction {
  const r = o.restore;
  const phase = r.status?.phase;
  if (r.metadata.deletionTimestamp || phase === "Completed" || phase === "Failed") {
    return { kind: "none" };
  }
  if (o.runningHere) return { kind: "none" };
  const attempts = r.status?.attempts ?? 0;
  const max = o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (attempts >= max) {
    return {
      kind: "fail",
      reason: "RetriesExhausted",
      message: `Restore was interrupted ${attempts} times: giving up after ${max} attempts`,
    };
  }
  const found = findSource(o);
  if ("fail" in found) return { kind: "fail", reason: found.fail, message: found.message };
  if ("wait" in found) return wait(found.wait, found.message);
  return planStart(o, found.source, attempts);
}

function wait(reason: RestoreReason, message: string): RestoreAction {
  return { kind: "wait", reason, message, afterMs: WAIT_RECHECK_MS };
}

/** The source is known: wait for its storage and the target, then start. */
function planStart(o: RestoreObservation, source: RestoreSource, attempts: number): RestoreAction {
  if (!o.storageExists(source.storageName)) {
    return wait(
      "StorageNotFound",
      `Waiting for BackupStorage "${source.storageName}": it does not exist`,
    );
  }
  const ref = o.restore.spec.target.databaseRef.name;
  if (!o.target) {
    return wait("DatabaseNotFound", `Waiting for target Database "${ref}": it does not exist`);
  }
  if (!databaseReady(o.target)) {
    return wait("DatabaseNotReady", `Waiting for target Database "${ref}" to be Ready`);
  }
  const target: RestoreTarget = {
    source,
    clusterName: o.target.spec.clusterRef.name,
    databaseName: o.target.status!.databaseName!,
    attempt: attempts + 1,
    retry: attempts > 0,
  };
  const other = o.targetBusy?.(target);
  if (other !== undefined && other !== o.key) {
    return wait(
      "TargetBusy",
      `Waiting for Restore ${other} into database "${target.databaseName}" to finish`,
    );
  }
  return { kind: "start", target };
}

/**
 * What a deleted or finished Restore still needs, or undefined while it is live: a deleted
 * one's job is aborted; once no job of it runs here, what it may have left on the server is
 * removed (then its finalizer). The job re-queues the key when it ended, so the cleanup runs
 * after the job, never beside it.
 */
export function planRelease(
  o: { restore: Restore | undefined; runningHere: boolean },
): { abort: boolean; cleanup: boolean } | undefined {
  const r = o.restore;
  const deleted = !r || Boolean(r.metadata.deletionTimestamp);
  const phase = r?.status?.phase;
  if (!deleted && phase !== "Completed" && phase !== "Failed") return undefined;
  return { abort: deleted, cleanup: r !== undefined && !o.runningHere };
}
