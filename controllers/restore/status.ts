/** Pure status transitions of a Restore. */
import type { Restore, RestoreStatus } from "../../crds/restore.ts";
import { setCondition } from "../runtime/conditions.ts";
import { jobEnd, kubeTime } from "../../lib/time.ts";
import { humanDuration } from "../../lib/format.ts";
import type { RestoreSource } from "./plan.ts";
import type { RestoreReason } from "./reasons.ts";

type Phase = NonNullable<RestoreStatus["phase"]>;

function next(
  r: Restore,
  phase: Phase,
  extra: Partial<RestoreStatus>,
  c: { ok: boolean; reason: RestoreReason; message: string; now: number },
): RestoreStatus {
  const generation = r.metadata.generation;
  return {
    ...r.status,
    ...extra,
    phase,
    message: c.message,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions: setCondition(r.status?.conditions, {
      type: "Ready",
      status: c.ok,
      reason: c.reason,
      message: c.message,
    }, { generation, now: new Date(c.now) }),
  };
}

export function pendingRestoreStatus(
  r: Restore,
  o: { reason: RestoreReason; message: string; now: number },
): RestoreStatus {
  return next(r, "Pending", {}, { ok: false, ...o });
}

export function runningRestoreStatus(
  r: Restore,
  o: {
    attempt: number;
    source: RestoreSource;
    now: number;
    /** Where it restores: recorded before anything is done there, for the cleanup. */
    clusterName: string;
    databaseName: string;
  },
): RestoreStatus {
  const { completedAt: _c, duration: _d, bytesRead: _b, ...rest } = r.status ?? {};
  return next({ ...r, status: rest }, "Running", {
    attempts: o.attempt,
    storageName: o.source.storageName,
    sourcePath: o.source.path,
    clusterName: o.clusterName,
    databaseName: o.databaseName,
    ...(o.source.backupName ? { sourceBackup: o.source.backupName } : {}),
    startedAt: kubeTime(o.now),
  }, {
    ok: false,
    reason: "Running",
    message: `Restoring ${o.source.path}` + (o.attempt > 1 ? ` (attempt ${o.attempt})` : ""),
    now: o.now,
  });
}

export function completedRestoreStatus(
  r: Restore,
  o: { sha256: string; bytesRead: number; durationMs: number; database: string; now: number },
): RestoreStatus {
  return next(r, "Completed", {
    sha256: o.sha256,
    bytesRead: o.bytesRead,
    duration: humanDuration(o.durationMs),
    completedAt: kubeTime(o.now),
  }, {
    ok: true,
    reason: "Completed",
    message: `Restored ${r.status?.sourcePath ?? "the dump"} into database "${o.database}"`,
    now: o.now,
  });
}

export function failedRestoreStatus(
  r: Restore,
  o: { reason: RestoreReason; message: string; now: number },
): RestoreStatus {
  const running = r.status?.phase === "Running";
  return next(r, "Failed", jobEnd({ startedAt: r.status?.startedAt, running, now: o.now }), {
    ok: false,
    ...o,
  });
}
