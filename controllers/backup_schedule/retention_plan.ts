/**
 * When retention runs and what it deletes, from the Backups a schedule owns (pure). The gates:
 * - it runs only after a Backup of this schedule completed successfully, once per newest
 *   success and spec generation (a failed or still running Backup never triggers it);
 * - only Completed Backups that carry their completion record (completedAt, path, sha256)
 *   count toward the rules; Pending, Running and incomplete ones are never touched;
 * - the newest successful Backup is never deleted (the policy keeps it; checked again here),
 *   nor the newest one a verification passed on (spec.verify; the annotation on the Backup);
 * - Failed Backups are cleaned up once they are older than the grace period and than the
 *   newest success, and never counted;
 * - only this schedule's own Backups are candidates (the caller passes those it owns).
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupSchedule } from "../../crds/backup_schedule.ts";
import { applyRetention, type KeepReason, policyIsEmpty } from "../../backup/retention.ts";
import { slotOf } from "./plan.ts";
import { verificationOf } from "./names.ts";

/** How long a Failed Backup of a schedule stays for inspection. */
export const FAILED_GRACE_MS = 24 * 60 * 60_000;

export type RetentionPlan =
  | { kind: "none"; why: "NoSuccess" | "AlreadyApplied" }
  | {
    kind: "apply";
    /** The newest successful Backup this run follows. */
    after: string;
    dryRun: boolean;
    /** Completed Backups the policy no longer keeps, newest first. */
    expired: Backup[];
    /** Failed Backups past the grace period. */
    failed: Backup[];
    keep: { name: string; reasons: KeepReason[] }[];
  };

/** Whether a Backup completed and recorded what it stored. */
export function completeRecord(b: Backup): boolean {
  const s = b.status;
  return s?.phase === "Completed" && !!s.completedAt && !!s.path && !!s.sha256;
}

/** The time retention files a Backup under: its slot, else its creation. */
export function backupTime(b: Backup): number {
  return slotOf(b) ?? (Date.parse(b.metadata.creationTimestamp ?? "") || 0);
}

/** Plans retention for `schedule` over the Backups it owns. */
export function planRetention(
  schedule: BackupSchedule,
  o: {
    owned: readonly Backup[];
    now: number;
    /** By hand (`dbtether backups forget`): apply even if already applied after this success. */
    manual?: boolean;
  },
): RetentionPlan {
  const live = o.owned.filter((b) => !b.metadata.deletionTimestamp);
  const complete = live.filter(completeRecord);
  const newest = complete.reduce<Backup | undefined>(
    (best, b) => (!best || completedAt(b) > completedAt(best) ? b : best),
    undefined,
  );
  if (!newest) return { kind: "none", why: "NoSuccess" };
  const applied = schedule.status?.retention;
  if (
    !o.manual && applied?.appliedAfter === newest.metadata.name &&
    applied.appliedGeneration === schedule.metadata.generation
  ) {
    return { kind: "none", why: "AlreadyApplied" };
  }
  const policy = schedule.spec.retention;
  const result = applyRetention(
    retentionCandidates(complete),
    policy,
    { now: o.now, timeZone: schedule.spec.timeZone ?? "UTC" },
  );
  const remove = new Set(result.remove);
  remove.delete(newest.metadata.name);
  const verified = newestVerified(complete);
  if (verified) remove.delete(verified.metadata.name);
  // Never the Backup a verification is restoring now.
  if (schedule.status?.verifying) remove.delete(schedule.status.verifying);
  const newestAt = completedAt(newest);
  const failed = policyIsEmpty(policy) ? [] : live.filter((b) => {
    if (b.status?.phase !== "Failed") return false;
    const t = Date.parse(b.status.completedAt ?? b.metadata.creationTimestamp ?? "");
    return t + FAILED_GRACE_MS <= o.now && t < newestAt;
  });
  return {
    kind: "apply",
    after: newest.metadata.name,
    dryRun: policy?.dryRun === true,
    expired: complete.filter((b) => remove.has(b.metadata.name))
      .sort((a, b) => backupTime(b) - backupTime(a)),
    failed,
    keep: result.keep.map((k) => ({ name: k.id, reasons: k.reasons })),
  };
}

/** Completed Backups as retention candidates, with whether a verification passed on them. */
export function retentionCandidates(complete: readonly Backup[]) {
  return complete.map((b) => ({
    id: b.metadata.name,
    time: backupTime(b),
    verified: verificationOf(b) === "Passed",
  }));
}

/** The newest Backup a verification passed on. */
export function newestVerified(complete: readonly Backup[]): Backup | undefined {
  return complete.filter((b) => verificationOf(b) === "Passed")
    .sort((a, b) => backupTime(b) - backupTime(a))[0];
}

function completedAt(b: Backup): number {
  return Date.parse(b.status?.completedAt ?? "") || 0;
}
