/**
 * The status a BackupSchedule reconcile writes and the Events it raises, computed from the slot
 * action, the Backups the schedule owns and what retention did. Ready is the source of truth;
 * `phase` summarises it for the PHASE column.
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupSchedule, BackupScheduleStatus } from "../../crds/backup_schedule.ts";
import { type Condition, getCondition, setCondition } from "../runtime/conditions.ts";
import { kubeTime } from "../../lib/time.ts";
import { pauseStateOf, withPause } from "../runtime/pause.ts";
import { humanDuration } from "../../lib/format.ts";
import { backupRunning, type SlotAction, slotOf } from "./plan.ts";

/** Reasons of the Ready condition, declared once. */
export type ScheduleReason =
  | "Scheduled"
  | "Suspended"
  | "WaitingForBackup"
  | "InvalidSchedule"
  | "SlotNameTaken"
  | "StorageNotFound"
  | "NamespaceNotAllowed";

/** What retention did in this reconcile (undefined: it did not run). */
export interface RetentionOutcome {
  appliedAfter: string;
  generation: number | undefined;
  deleted: readonly string[];
  wouldDelete: readonly string[];
}

/** What one reconcile found and did. */
export interface ScheduleOutcome {
  action: SlotAction;
  /** The Backups this schedule owns, including one created by this reconcile. */
  owned: readonly Backup[];
  retention?: RetentionOutcome | undefined;
  now: number;
}

/** An Event to record on the schedule. */
export interface ScheduleEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

const at = (t: number) => new Date(t).toISOString();

function readyOf(a: SlotAction): { status: boolean; reason: ScheduleReason; message: string } {
  const next = "next" in a && a.next !== undefined ? `; next slot ${at(a.next)}` : "";
  switch (a.kind) {
    case "invalid":
      return { status: false, reason: "InvalidSchedule", message: a.message };
    case "suspended":
      return { status: true, reason: "Suspended", message: "Suspended: no Backups are created" };
    case "taken":
      return {
        status: false,
        reason: "SlotNameTaken",
        message: `Cannot create Backup "${a.name}" for slot ${at(a.slot)}: a Backup of that ` +
          "name exists and does not belong to this schedule; it is left alone",
      };
    case "blocked":
      return { status: false, reason: a.reason, message: a.message };
    case "wait":
      return {
        status: true,
        reason: "WaitingForBackup",
        message: `Slot ${at(a.slot)} waits for Backup ${
          a.running.map((n) => JSON.stringify(n)).join(", ")
        } to finish (concurrencyPolicy Forbid)${next}`,
      };
    default:
      return { status: true, reason: "Scheduled", message: `Scheduled${next}` };
  }
}

function phaseOf(a: SlotAction, ready: Condition): NonNullable<BackupScheduleStatus["phase"]> {
  if (a.kind === "suspended") return "Suspended";
  return ready.status === "True" ? "Active" : "Failed";
}

const newestBy = (list: readonly Backup[], time: (b: Backup) => number | undefined) =>
  list.reduce<{ b: Backup; t: number } | undefined>((best, b) => {
    const t = time(b);
    return t !== undefined && (!best || t > best.t) ? { b, t } : best;
  }, undefined);

const completedAt = (b: Backup) =>
  b.status?.phase === "Completed" && b.status.completedAt
    ? Date.parse(b.status.completedAt)
    : undefined;
const failedAt = (b: Backup) =>
  b.status?.phase === "Failed" ? Date.parse(b.status.completedAt ?? "") || 0 : undefined;

/** The desired status after a reconcile of `s` with `o`. */
export function computeScheduleStatus(s: BackupSchedule, o: ScheduleOutcome): BackupScheduleStatus {
  const old = s.status ?? {};
  const generation = s.metadata.generation;
  const ready = readyOf(o.action);
  const conditions = withPause(
    setCondition(old.conditions, { type: "Ready", ...ready }, {
      generation,
      now: new Date(o.now),
    }),
    pauseStateOf(s),
    { generation, now: new Date(o.now) },
  );
  const status: BackupScheduleStatus = {
    ...old,
    phase: phaseOf(o.action, getCondition(conditions, "Ready")!),
    message: ready.message,
    managedBackups: o.owned.length,
    active: o.owned.filter(backupRunning).map((b) => b.metadata.name).sort(),
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions,
  };
  delete status.nextScheduledTime;
  if ("next" in o.action && o.action.next !== undefined) {
    status.nextScheduledTime = kubeTime(o.action.next);
  }
  const a = o.action;
  if (a.kind === "create" || a.kind === "replace" || a.kind === "skip") {
    status.lastScheduleTime = kubeTime(a.slot);
  }
  const last = newestBy(o.owned, slotOf);
  if (last) {
    status.lastBackup = last.b.metadata.name;
    status.lastBackupTime = kubeTime(last.t);
  }
  const ok = newestBy(o.owned, completedAt);
  if (ok) {
    status.lastSuccessfulBackup = ok.b.metadata.name;
    status.lastSuccessfulTime = kubeTime(ok.t);
  }
  const failed = newestBy(o.owned, failedAt);
  if (failed) status.lastFailedBackup = failed.b.metadata.name;
  if (o.retention) status.retention = retentionStatus(old.retention, o.retention, o.now);
  return status;
}

function retentionStatus(
  old: BackupScheduleStatus["retention"],
  r: RetentionOutcome,
  now: number,
): NonNullable<BackupScheduleStatus["retention"]> {
  return {
    lastRunTime: kubeTime(now),
    appliedAfter: r.appliedAfter,
    ...(r.generation === undefined ? {} : { appliedGeneration: r.generation }),
    deletedTotal: (old?.deletedTotal ?? 0) + r.deleted.length,
    lastDeleted: r.deleted.slice(0, 64),
    wouldDelete: r.wouldDelete.slice(0, 64),
  };
}

/** The Events of a reconcile: created, skipped, missed and failed slots, retention. */
export function scheduleEvents(
  before: BackupScheduleStatus | undefined,
  after: BackupScheduleStatus,
  o: ScheduleOutcome,
): ScheduleEvent[] {
  const out: ScheduleEvent[] = [];
  const a = o.action;
  const missedOne = a.kind === "create" || a.kind === "replace" ||
    (a.kind === "skip" && !a.paused);
  if (missedOne && a.missed > 0) {
    out.push({
      type: "Warning",
      reason: "MissedSchedule",
      message: `${a.missed} slot${a.missed > 1 ? "s" : ""} before ${at(a.slot)} ` +
        "were missed (the operator was not running); they collapse into this one",
    });
  }
  if (a.kind === "create" || a.kind === "replace") {
    out.push({
      type: "Normal",
      reason: "BackupCreated",
      message: `Created Backup "${a.name}" for slot ${at(a.slot)}` +
        (a.kind === "replace" ? ` after deleting ${a.running.join(", ")} (Replace)` : ""),
    });
  }
  if (a.kind === "skip") {
    out.push({
      type: "Warning",
      reason: "SlotSkipped",
      message: a.paused
        ? `Skipped slot ${at(a.slot)}: it came while reconciling was paused ` +
          "(slots of a pause are not caught up)"
        : `Skipped slot ${at(a.slot)}: it is ${a.lateSeconds}s late, more than ` +
          "startingDeadlineSeconds",
    });
  }
  if (after.lastFailedBackup && after.lastFailedBackup !== before?.lastFailedBackup) {
    out.push({
      type: "Warning",
      reason: "BackupFailed",
      message: `Backup "${after.lastFailedBackup}" of this schedule failed`,
    });
  }
  const r0 = getCondition(before?.conditions, "Ready");
  const r1 = getCondition(after.conditions, "Ready")!;
  if (r1.status === "False" && (r0?.status !== "False" || r0.reason !== r1.reason)) {
    out.push({ type: "Warning", reason: r1.reason, message: r1.message });
  }
  if (o.retention?.deleted.length) {
    out.push({
      type: "Normal",
      reason: "RetentionDeleted",
      message: `Retention deleted ${o.retention.deleted.length} Backup(s) and their stored ` +
        `dumps: ${o.retention.deleted.join(", ")}`,
    });
  }
  if (o.retention?.wouldDelete.length) {
    out.push({
      type: "Normal",
      reason: "RetentionDryRun",
      message: `Retention (dryRun) would delete: ${o.retention.wouldDelete.join(", ")}`,
    });
  }
  return out;
}

/** Reasons of the Verified condition, declared once. */
export type VerifiedReason = "VerificationPassed" | "VerificationFailed" | "VerificationError";

/** How one verification ended. */
export interface VerificationOutcome {
  backup: string;
  result: "Passed" | "Failed" | "Error";
  message: string;
  durationMs: number;
  now: number;
}

const VERIFIED_REASONS: Record<VerificationOutcome["result"], VerifiedReason> = {
  Passed: "VerificationPassed",
  Failed: "VerificationFailed",
  Error: "VerificationError",
};

/** The status after a verification: lastVerification, the Verified condition, no `verifying`. */
export function verifiedStatus(s: BackupSchedule, o: VerificationOutcome): BackupScheduleStatus {
  const old = s.status ?? {};
  const passed = o.result === "Passed";
  const { verifying: _v, ...rest } = old;
  return {
    ...rest,
    lastVerification: {
      time: kubeTime(o.now),
      backup: o.backup,
      result: o.result,
      duration: humanDuration(o.durationMs),
      message: o.message.slice(0, 1024),
    },
    conditions: setCondition(old.conditions, {
      type: "Verified",
      status: passed,
      reason: VERIFIED_REASONS[o.result],
      message: `Backup "${o.backup}": ${o.message}`,
    }, { generation: s.metadata.generation, now: new Date(o.now) }),
  };
}

/** The status while a verification of `backup` runs (its scratch database may exist). */
export function verifyingStatus(
  s: BackupSchedule,
  backup: string | undefined,
): BackupScheduleStatus {
  const { verifying: _v, ...rest } = s.status ?? {};
  return backup === undefined ? rest : { ...rest, verifying: backup };
}
