/**
 * The names and labels of the Backups a BackupSchedule creates. The name is a pure function of
 * the schedule's name and the slot, so a retry, a restart or a new leader that handles the same
 * slot asks for the same name and gets AlreadyExists: the name is the fence that keeps a slot
 * from running twice.
 *
 * dbtether names them `<schedule>-<YYYYMMDD-HHMM>` with the slot in UTC (a local time would
 * repeat in the hour a DST change repeats). The result is kept within 63 characters so it is
 * also a valid label value: a schedule name longer than 49 characters is cut to 40 and
 * followed by 8 hex digits of its SHA-256, `<first 40>-<hash>-<YYYYMMDD-HHMM>`.
 */
import { createHash } from "node:crypto";
import type { Backup } from "../../crds/backup.ts";

/** Label on a scheduled Backup: the schedule's name (shortened like the Backup name). */
export const SCHEDULE_LABEL = "dbtether.io/schedule";
/** Label on a scheduled Backup: the schedule's namespace. */
export const SCHEDULE_NAMESPACE_LABEL = "dbtether.io/schedule-namespace";
/** Annotation on a scheduled Backup: its slot, RFC 3339 UTC. */
export const SLOT_ANNOTATION = "dbtether.io/scheduled-at";

/** The longest Backup name we create (a label value's limit). */
export const MAX_NAME = 63;
const STAMP = 13; // YYYYMMDD-HHMM
const CUT = 40;

/** The schedule's part of its Backups' names and its label value: at most 49 characters. */
export function scheduleToken(schedule: string): string {
  if (schedule.length <= MAX_NAME - STAMP - 1) return schedule;
  const hash = createHash("sha256").update(schedule).digest("hex").slice(0, 8);
  return `${schedule.slice(0, CUT).replace(/[-.]+$/, "")}-${hash}`;
}

/** `YYYYMMDD-HHMM` of an instant, in UTC. */
export function slotStamp(slot: number): string {
  const iso = new Date(slot).toISOString(); // 2026-03-29T01:30:00.000Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${
    iso.slice(14, 16)
  }`;
}

/** The name of the Backup of `schedule` for `slot`. */
export function backupNameForSlot(schedule: string, slot: number): string {
  return `${scheduleToken(schedule)}-${slotStamp(slot)}`;
}

/** On a Backup a schedule verified: `Passed` or `Failed`. */
export const VERIFIED_ANNOTATION = "dbtether.io/verified";
/** When that verification ended (RFC 3339). */
export const VERIFIED_AT_ANNOTATION = "dbtether.io/verified-at";

export type VerificationResult = "Passed" | "Failed";

/** What a verification of `b` found, or undefined when none ran. */
export function verificationOf(b: Backup): VerificationResult | undefined {
  const v = b.metadata.annotations?.[VERIFIED_ANNOTATION];
  return v === "Passed" || v === "Failed" ? v : undefined;
}
