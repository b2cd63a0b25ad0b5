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
  objectName,
  observedGenerationField,
  timestamp,
  VERSION,
} from "./kind.ts";
import { backupTemplateFields } from "./backup.ts";

/** What to do when a slot comes while the previous Backup still runs. */
export const CONCURRENCY_POLICIES = ["Forbid", "Allow", "Replace"] as const;

// Five fields (minute hour day-of-month month day-of-week) or a descriptor, as in dbtether.
// Field values are checked by the parser (status reason InvalidSchedule); admission rejects
// what no cron field can contain.
const FIELD = "[0-9A-Za-z*,/?#-]+";
const CRON =
  `^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(${FIELD}\\s+){4}${FIELD})$`;
// IANA names: Area/Location[/Sublocation], or UTC, Etc/GMT+5 and the like. Unknown names
// that match are reported by the controller (InvalidSchedule).
const TIME_ZONE = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$";

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
    pattern: TIME_ZONE,
    description: "IANA time zone of the schedule, e.g. Europe/Berlin; default UTC.",
  })),
  suspend: withDefault(
    bool({ description: "Stop creating Backups; existing ones and retention are kept." }),
    false,
  ),
  concurrencyPolicy: withDefault(
    enumOf(CONCURRENCY_POLICIES, {
      description: "When a slot comes while the previous Backup still runs: Forbid (wait " +
        "for it, then run the slot if startingDeadlineSeconds allows), Allow (run both) or " +
        "Replace (delete the running Backup, then run the slot).",
    }),
    "Forbid" as typeof CONCURRENCY_POLICIES[number],
  ),
  startingDeadlineSeconds: optional(int({
    minimum: 0,
    description: "A slot that cannot start within this many seconds of its time (operator " +
      "down, previous Backup still running) is skipped and reported; unset: it runs late. " +
      "Missed slots always collapse into one run, the most recent.",
  })),
  retention: optional(obj({
    keepLast: keep("Keep the N most recent completed backups."),
    keepDaily: keep("Keep the newest backup of each of the last N days that have one."),
    keepWeekly: keep("Keep the newest backup of each of the last N weeks that have one."),
    keepMonthly: keep("Keep the newest backup of each of the last N months that have one."),
    keepYearly: keep("Keep the newest backup of each of the last N years that have one."),
    dryRun: withDefault(
      bool({
        description: "Only report what the policy would delete (status.retention.wouldDelete " +
          "and an Event); delete nothing.",
      }),
      false,
    ),
  }, {
    description: "Which completed Backups of this schedule to keep, with restic's forget " +
      "semantics: days, weeks (Monday to Sunday), months and years in the schedule's time " +
      "zone; a backup kept by any rule stays. Unset or empty keeps everything.",
  })),
  verify: optional(obj({
    every: optional(int({
      minimum: 1,
      maximum: 1000,
      description: "Verify the newest successful Backup once N successful Backups were made " +
        "since the last verification (1: every one).",
    })),
    schedule: optional(str({
      minLength: 1,
      maxLength: 128,
      pattern: CRON,
      description: "Verify the newest successful Backup on this cron schedule instead (same " +
        "syntax and time zone as spec.schedule).",
    })),
    clusterRef: optional(obj({
      name: objectName({ description: "Name of the DBCluster." }),
    }, {
      description: "Restore into a scratch database on this DBCluster instead of the " +
        "Database's own; its allowedNamespaces must admit this namespace. The scratch " +
        "database there has an owner role of its own (dbtether_verifyowner_<hash>), dropped " +
        "with it.",
    })),
  }, {
    description: "Restore tests: a Backup is restored into a scratch database on the same " +
      "server (or clusterRef's; named <database>_verify_<hash>, dropped afterwards), its table " +
      "and row counts compared with those recorded from the dump's snapshot. Exactly one of " +
      "every and schedule.",
    rules: [{
      rule: "(has(self.every) ? 1 : 0) + (has(self.schedule) ? 1 : 0) == 1",
      message: "exactly one of every and schedule must be set",
    }],
  })),
}, { description: "What to back up, when, and what to keep." });

/** How a verification ended. */
/**
 * How a verification ended: Passed or Failed judge the backup; Error means it could not be
 * verified (database not ready, storage unreachable…) and says nothing about the backup.
 */
export const VERIFICATION_RESULTS = ["Passed", "Failed", "Error"] as const;

/** The phases a BackupSchedule reports. */
export const BACKUP_SCHEDULE_PHASES = ["Active", "Suspended", "Failed"] as const;

const name = (description: string) => optional(str({ maxLength: 253, description }));

const status = obj({
  phase: optional(enumOf(BACKUP_SCHEDULE_PHASES, { description: "Summary of the conditions." })),
  message: messageField,
  lastScheduleTime: timestamp("The last slot handled: a Backup created for it, or skipped."),
  lastBackup: name("Name of the last Backup created."),
  lastBackupTime: timestamp("The slot of the last Backup created."),
  lastSuccessfulBackup: name("Name of the newest Backup of this schedule that completed."),
  lastSuccessfulTime: timestamp("When the newest successful Backup completed."),
  lastFailedBackup: name("Name of the newest Backup of this schedule that failed."),
  nextScheduledTime: timestamp("The next slot."),
  managedBackups: optional(int({
    minimum: 0,
    description: "How many Backups of this schedule exist.",
  })),
  active: optional(arr(str({ maxLength: 253 }), {
    maxItems: 64,
    description: "Backups of this schedule that are Pending or Running.",
  })),
  retention: optional(obj({
    lastRunTime: timestamp("When the policy was last applied."),
    appliedAfter: name("The successful Backup the policy was last applied after."),
    appliedGeneration: optional(int({
      minimum: 0,
      description: "The spec generation the policy was last applied with.",
    })),
    deletedTotal: optional(int({
      minimum: 0,
      description: "Backups this schedule's retention deleted (resource and stored object).",
    })),
    lastDeleted: optional(arr(str({ maxLength: 253 }), {
      maxItems: 64,
      description: "The Backups deleted by the last run.",
    })),
    wouldDelete: optional(arr(str({ maxLength: 253 }), {
      maxItems: 64,
      description: "With dryRun: the Backups the policy would delete now.",
    })),
  }, { description: "What the retention policy did." })),
  verifying: name("The Backup a verification runs for now (its scratch database may exist)."),
  lastVerification: optional(obj({
    time: timestamp("When the last verification ended."),
    backup: name("The Backup it restored."),
    result: optional(enumOf(VERIFICATION_RESULTS, {
      description:
        "Passed or Failed (the backup's verdict), or Error (it could not be verified; retried).",
    })),
    duration: optional(str({ maxLength: 32, description: "How long it took, e.g. 12s." })),
    message: messageField,
  }, { description: "The last restore test (spec.verify)." })),
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
    { name: "Database", type: "string", jsonPath: ".spec.databaseRef.name" },
    { name: "Schedule", type: "string", jsonPath: ".spec.schedule" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Last Backup", type: "date", jsonPath: ".status.lastBackupTime" },
    { name: "Next", type: "date", jsonPath: ".status.nextScheduledTime" },
    ageColumn,
  ],
});
