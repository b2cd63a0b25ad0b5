/**
 * Which Backup of a schedule to verify now (spec.verify), pure. A verification restores one
 * successful Backup into a scratch database and compares its counts with those the backup
 * recorded (verify_job.ts). Each verified Backup carries the outcome in an annotation, which is
 * what this plan, retention ("newest verified") and `dbtether backups list` read.
 * - `every: N`: once N successful Backups were made after the newest verified one (all of them
 *   when none was verified yet), verify the newest successful Backup.
 * - `schedule: <cron>`: at each slot of that schedule (in the schedule's time zone) after the
 *   last verification, verify the newest successful Backup.
 * - A verification that ended in Error (it could not run: the database not ready, the storage
 *   unreachable…) marks no Backup and is tried again {@link VERIFY_RETRY_MS} after it ended.
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupSchedule } from "../../crds/backup_schedule.ts";
import type { ParsedSchedule } from "../../backup/slots.ts";
import { backupTime, completeRecord } from "./retention_plan.ts";
import { verificationOf } from "./names.ts";

export { verificationOf, VERIFIED_ANNOTATION, VERIFIED_AT_ANNOTATION } from "./names.ts";
export type { VerificationResult } from "./names.ts";

export type VerifyPlan =
  | { kind: "off" }
  | { kind: "invalid"; message: string }
  /** Nothing to verify now; `next` is when to look again (cron), if known. */
  | { kind: "none"; next?: number }
  | { kind: "verify"; backup: Backup; next?: number };

/** How long after a verification ended in Error it is tried again. */
export const VERIFY_RETRY_MS = 5 * 60_000;

const newestFirst = (list: readonly Backup[]) =>
  [...list].sort((a, b) => backupTime(b) - backupTime(a));

/** Plans the verification of `s` over the Backups it owns. */
export function planVerification(
  s: BackupSchedule,
  o: { owned: readonly Backup[]; now: number; parsed?: ParsedSchedule },
): VerifyPlan {
  const v = s.spec.verify;
  if (!v) return { kind: "off" };
  const complete = newestFirst(
    o.owned.filter((b) => !b.metadata.deletionTimestamp && completeRecord(b)),
  );
  const newest = complete[0];
  const last = s.status?.lastVerification;
  if (last?.result === "Error" && newest) {
    const retryAt = (Date.parse(last.time ?? "") || 0) + VERIFY_RETRY_MS;
    if (o.now < retryAt) return { kind: "none", next: retryAt };
    if (verificationOf(newest) === undefined) return { kind: "verify", backup: newest };
  }
  if (v.every !== undefined) {
    const lastDone = complete.findIndex((b) => verificationOf(b) !== undefined);
    const since = lastDone === -1 ? complete.length : lastDone;
    return newest && since >= v.every ? { kind: "verify", backup: newest } : { kind: "none" };
  }
  if (!o.parsed) return { kind: "none" };
  if (!o.parsed.ok) {
    return { kind: "invalid", message: `spec.verify.schedule: ${o.parsed.message}` };
  }
  const cron = o.parsed.schedule;
  const next = cron.nextAfter(o.now);
  const slot = cron.latestAtOrBefore(o.now);
  // The first slot counts from the schedule's creation, later ones from the last verification.
  const since = Date.parse(s.status?.lastVerification?.time ?? "") ||
    Date.parse(s.metadata.creationTimestamp ?? "") || 0;
  const due = slot !== undefined && slot > since;
  const opt = next === undefined ? {} : { next };
  return due && newest ? { kind: "verify", backup: newest, ...opt } : { kind: "none", ...opt };
}
