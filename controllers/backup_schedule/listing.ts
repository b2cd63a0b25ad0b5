/**
 * What `dbtether backups list` shows (pure): one row per Backup of a schedule with its slot
 * time, size, state, and which retention rule keeps it now (or that the policy no longer does).
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupSchedule } from "../../crds/backup_schedule.ts";
import { applyRetention } from "../../backup/retention.ts";
import { backupTime, completeRecord, retentionCandidates } from "./retention_plan.ts";
import { verificationOf } from "./names.ts";

export interface BackupRow {
  schedule: string;
  name: string;
  /** The slot (RFC 3339, UTC). */
  time: string;
  size: string;
  sizeBytes: number | null;
  state: string;
  /** Whether a restore test (spec.verify) passed on it; null when none ran. */
  verified: boolean | null;
  /** The rules keeping it; [] when the policy would delete it; null when it does not count. */
  keptBy: string[] | null;
}

/** The rows of one schedule's Backups, newest first. */
export function scheduleRows(
  s: BackupSchedule,
  backups: readonly Backup[],
  now: number,
): BackupRow[] {
  const complete = backups.filter(completeRecord);
  const verdict = applyRetention(
    retentionCandidates(complete),
    s.spec.retention,
    { now, timeZone: s.spec.timeZone ?? "UTC" },
  );
  const kept = new Map(verdict.keep.map((k) => [k.id, k.reasons as string[]]));
  return [...backups].sort((a, b) => backupTime(b) - backupTime(a)).map((b) => ({
    schedule: s.metadata.name,
    name: b.metadata.name,
    time: new Date(backupTime(b)).toISOString(),
    size: b.status?.size ?? "",
    sizeBytes: b.status?.sizeBytes ?? null,
    state: b.status?.phase ?? "Pending",
    verified: verificationOf(b) === undefined ? null : verificationOf(b) === "Passed",
    keptBy: completeRecord(b) ? kept.get(b.metadata.name) ?? [] : null,
  }));
}

/** The rows as a table for a terminal. */
export function renderRows(rows: readonly BackupRow[]): string {
  const head = ["SCHEDULE", "NAME", "TIME", "SIZE", "STATE", "VERIFIED", "KEPT BY"];
  const cells = rows.map((r) => [
    r.schedule,
    r.name,
    r.time,
    r.size || "-",
    r.state,
    r.verified === null ? "-" : r.verified ? "yes" : "no",
    r.keptBy === null ? "-" : r.keptBy.length ? r.keptBy.join(", ") : "(expires)",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [head, ...cells].map((row) =>
    row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")
  ).join("\n") + "\n";
}
