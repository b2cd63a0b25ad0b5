/** The BackupSchedule metrics, registered once in the process's registry. */
import type { BackupSchedule } from "../../crds/backup_schedule.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import type { SlotAction } from "./plan.ts";

type Metrics = ControllerDeps["metrics"];

export interface ScheduleMetrics {
  nextRun: ReturnType<Metrics["gauge"]>;
  lastRun: ReturnType<Metrics["gauge"]>;
  lastSuccess: ReturnType<Metrics["gauge"]>;
  skipped: ReturnType<Metrics["counter"]>;
  retentionDeletions: ReturnType<Metrics["counter"]>;
  verifications: ReturnType<Metrics["counter"]>;
  lastVerified: ReturnType<Metrics["gauge"]>;
  verificationDuration: ReturnType<Metrics["gauge"]>;
  /** Records how a verification of `s` ended. */
  verified(
    s: BackupSchedule,
    o: { result: "Passed" | "Failed" | "Error"; at: number; durationMs: number },
  ): void;
  /** Records what one reconcile of `s` found and did. */
  observe(s: BackupSchedule, action: SlotAction): void;
}

const LABELS = ["namespace", "schedule"] as const;
const seconds = (iso: string | undefined) => (iso ? Date.parse(iso) / 1000 : undefined);

export function scheduleMetrics(m: Metrics): ScheduleMetrics {
  const out: ScheduleMetrics = {
    nextRun: m.gauge(
      "dbtether_backup_schedule_next_run_timestamp_seconds",
      "Unix time of a schedule's next slot.",
      LABELS,
    ),
    lastRun: m.gauge(
      "dbtether_backup_schedule_last_run_timestamp_seconds",
      "Unix time of the slot of the last Backup a schedule created.",
      LABELS,
    ),
    lastSuccess: m.gauge(
      "dbtether_backup_schedule_last_success_timestamp_seconds",
      "Unix time the newest successful Backup of a schedule completed.",
      LABELS,
    ),
    skipped: m.counter(
      "dbtether_backup_schedule_skipped_slots_total",
      "Slots skipped because they could not start within startingDeadlineSeconds.",
      LABELS,
    ),
    retentionDeletions: m.counter(
      "dbtether_backup_schedule_retention_deletions_total",
      "Backups (resource and stored dump) deleted by a schedule's retention policy.",
      LABELS,
    ),
    verifications: m.counter(
      "dbtether_backup_schedule_verifications_total",
      "Restore tests (spec.verify) of a schedule's Backups, by result (Passed, Failed or Error).",
      [...LABELS, "result"],
    ),
    lastVerified: m.gauge(
      "dbtether_backup_schedule_last_verification_timestamp_seconds",
      "Unix time the last restore test of a schedule ended, by result (Passed, Failed or Error).",
      [...LABELS, "result"],
    ),
    verificationDuration: m.gauge(
      "dbtether_backup_schedule_last_verification_duration_seconds",
      "How long the last restore test of a schedule took.",
      LABELS,
    ),
    verified(s, o) {
      const l = { namespace: s.metadata.namespace ?? "", schedule: s.metadata.name };
      out.verifications.inc({ ...l, result: o.result });
      out.lastVerified.set({ ...l, result: o.result }, o.at / 1000);
      out.verificationDuration.set(l, o.durationMs / 1000);
    },
    observe(s, action) {
      const l = { namespace: s.metadata.namespace ?? "", schedule: s.metadata.name };
      if ("next" in action && action.next !== undefined) out.nextRun.set(l, action.next / 1000);
      else out.nextRun.remove(l);
      if (action.kind === "create" || action.kind === "replace") {
        out.lastRun.set(l, action.slot / 1000);
      }
      if (action.kind === "skip") out.skipped.inc(l);
      const ok = seconds(s.status?.lastSuccessfulTime);
      if (ok !== undefined) out.lastSuccess.set(l, ok);
    },
  };
  return out;
}
