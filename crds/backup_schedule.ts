/**
 * BackupSchedule: Backups of a Database on a cron schedule, with a retention policy.
 */
import { arr, bool, enumOf, type Infer, int, obj, optional, str, withDefault } from "./schema.ts";
import {
  ageColumn,
  conditionsField,
  defineKind,
  GROUP,
  type KubeObject,
  messageField,
  observedGenerationField,
  timestamp,
  VERSION,
} from "./kind.ts";
import { backupTemplateFields } from "./backup.ts";

/** What to do when a slot comes while the previous Backup still runs. */
export const CONCURRENCY_POLICIES = ["Forbid", "Allow", "Replace"] as const;

// Five fields (minute hour day-of-month month day-of-week) or a descriptor, as in dbtether.
const CRON = "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\\S+\\s+){4}\\S+)$";

const keep = (description: string) => optional(int({ minimum: 0, maximum: 10000, description }));

const spec = obj({
  ...backupTemplateFields,
  schedule: str({
    minLength: 1,
    maxLength: 128,
    pattern: CRON,
    description: "Cron schedule with five fields, e.g. '0 2 * * *' for 02:00 daily, or a " +
      "descriptor such as @daily.",
  }),
  timeZone: optional(str({
    minLength: 1,
    maxLength: 64,
    description: "IANA time zone of the schedule, e.g. Europe/Berlin; default UTC.",
  })),
  suspend: withDefault(
    bool({ description: "Stop creating Backups; existing ones and retention are kept." }),
    false,
  ),
  concurrencyPolicy: withDefault(
    enumOf(CONCURRENCY_POLICIES, {
      description: "When a slot comes while the previous Backup still runs: Forbid (skip " +
        "the slot), Allow (run both) or Replace (cancel the running one).",
    }),
    "Forbid" as typeof CONCURRENCY_POLICIES[number],
  ),
  startingDeadlineSeconds: optional(int({
    minimum: 0,
    description: "A slot missed (operator down) by more than this is skipped; unset: only " +
      "the most recent missed slot runs.",
  })),
  retention: optional(obj({
    keepLast: keep("Keep the N most recent completed backups."),
    keepDaily: keep("Keep the newest backup of each of the last N days that have one."),
    keepWeekly: keep("Keep the newest backup of each of the last N weeks that have one."),
    keepMonthly: keep("Keep the newest backup of each of the last N months that have one."),
  }, {
    description: "Which completed Backups of this schedule to keep; a backup kept by any " +
      "rule stays. Unset or empty keeps everything.",
  })),
}, { description: "What to back up, when, and what to keep." });

/** The phases a BackupSchedule reports. */
export const BACKUP_SCHEDULE_PHASES = ["Active", "Suspended", "Failed"] as const;

const status = obj({
  phase: optional(enumOf(BACKUP_SCHEDULE_PHASES, { description: "Summary of the conditions." })),
  message: messageField,
  lastScheduleTime: timestamp("The slot of the last Backup created."),
  lastBackup: optional(str({ maxLength: 253, description: "Name of the last Backup created." })),
  lastSuccessfulBackup: optional(str({
    maxLength: 253,
    description: "Name of the last Backup that completed.",
  })),
  lastSuccessfulTime: timestamp("When the last successful Backup completed."),
  nextScheduleTime: timestamp("The next slot."),
  active: optional(arr(str({ maxLength: 253 }), {
    maxItems: 64,
    description: "Backups of this schedule that are Pending or Running.",
  })),
  observedGeneration: observedGenerationField,
  conditions: conditionsField,
});

/** The desired state of a BackupSchedule. */
export type BackupScheduleSpec = Infer<typeof spec>;
/** The observed state of a BackupSchedule. */
export type BackupScheduleStatus = Infer<typeof status>;
/** A BackupSchedule object. */
export type BackupSchedule = KubeObject<BackupScheduleSpec, BackupScheduleStatus>;

/** The BackupSchedule kind: its CRD and its API descriptor. */
export const BackupScheduleKind = defineKind({
  group: GROUP,
  version: VERSION,
  kind: "BackupSchedule",
  plural: "backupschedules",
  singular: "backupschedule",
  shortNames: ["bks"],
  categories: ["dbtether"],
  scope: "Namespaced",
  description: "BackupSchedule creates Backups of a Database on a cron schedule and deletes " +
    "those its retention policy no longer keeps.",
  spec,
  status: optional(status),
  printerColumns: [
    { name: "Database", type: "string", jsonPath: ".spec.databaseRef.name", priority: 1 },
    { name: "Schedule", type: "string", jsonPath: ".spec.schedule" },
    { name: "Suspend", type: "boolean", jsonPath: ".spec.suspend" },
    { name: "Last Backup", type: "date", jsonPath: ".status.lastScheduleTime" },
    ageColumn,
  ],
});
