/**
 * Restore: a stored dump streamed back into a Database (storage → gunzip → psql or pg_restore).
 */
import { enumOf, type Infer, int, obj, optional, str, withDefault } from "./schema.ts";
import {
  ageColumn,
  conditionsField,
  defineKind,
  GROUP,
  type KubeObject,
  localRef,
  messageField,
  observedGenerationField,
  timestamp,
  VERSION,
} from "./kind.ts";

/** What to do when the target database is not empty. */
export const RESTORE_ON_CONFLICT = ["fail", "drop"] as const;

const spec = obj({
  source: obj({
    backupRef: optional(localRef("A Completed Backup in this namespace.", "Name of the Backup.")),
    latestFrom: optional(obj({
      databaseRef: localRef("The Database whose newest Completed Backup is restored."),
    }, { description: "The newest Completed Backup of a Database in this namespace." })),
    path: optional(str({
      minLength: 1,
      maxLength: 4096,
      description: "Key of a dump in storageRef, e.g. a backup made elsewhere.",
    })),
    storageRef: optional(localRef(
      "The BackupStorage holding path (only with path).",
      "Name of the BackupStorage.",
    )),
  }, {
    description: "The dump to restore: exactly one of backupRef, latestFrom, or path with " +
      "storageRef.",
    rules: [
      {
        rule: "(has(self.backupRef) ? 1 : 0) + (has(self.latestFrom) ? 1 : 0) + " +
          "(has(self.path) ? 1 : 0) == 1",
        message: "exactly one of source.backupRef, source.latestFrom and source.path must be set",
      },
      {
        rule: "has(self.path) == has(self.storageRef)",
        message: "source.storageRef is required with source.path and only allowed with it",
      },
    ],
  }),
  target: obj({
    databaseRef: localRef("The Database to restore into, in this namespace."),
  }, { description: "Where to restore." }),
  onConflict: withDefault(
    enumOf(RESTORE_ON_CONFLICT, {
      description: "fail: the target database must be empty; drop: replace what it holds. " +
        "Either way the dump is restored into a scratch database and swapped in only when " +
        "complete and verified.",
    }),
    "fail" as typeof RESTORE_ON_CONFLICT[number],
  ),
}, {
  description: "What to restore where. Immutable: create a new Restore to restore again.",
  rules: [{
    rule: "self == oldSelf",
    message: "a Restore's spec is immutable: create a new Restore instead",
  }],
});

/** The phases a Restore goes through. */
export const RESTORE_PHASES = ["Pending", "Running", "Completed", "Failed"] as const;

const status = obj({
  phase: optional(enumOf(RESTORE_PHASES, { description: "Summary of the conditions." })),
  message: messageField,
  sourceBackup: optional(str({ maxLength: 253, description: "The Backup restored, if any." })),
  storageName: optional(str({ maxLength: 253, description: "The BackupStorage read from." })),
  sourcePath: optional(str({ maxLength: 4096, description: "Key of the dump restored." })),
  clusterName: optional(str({
    maxLength: 253,
    description: "The DBCluster restored into (for the cleanup of an interrupted restore).",
  })),
  databaseName: optional(str({
    maxLength: 63,
    description: "The target database in PostgreSQL.",
  })),
  sha256: optional(str({
    pattern: "^[a-f0-9]{64}$",
    description: "SHA-256 of the dump as read (checked against the Backup's).",
  })),
  bytesRead: optional(int({ minimum: 0, description: "Stored bytes read so far." })),
  duration: optional(str({ maxLength: 32, description: "How long the restore ran." })),
  startedAt: timestamp("When the restore started."),
  completedAt: timestamp("When the restore completed or failed."),
  attempts: optional(int({ minimum: 0, description: "How many times the restore was started." })),
  observedGeneration: observedGenerationField,
  conditions: conditionsField,
});

/** The desired state of a Restore. */
export type RestoreSpec = Infer<typeof spec>;
/** The observed state of a Restore. */
export type RestoreStatus = Infer<typeof status>;
/** A Restore object. */
export type Restore = KubeObject<RestoreSpec, RestoreStatus>;

/** The Restore kind: its CRD and its API descriptor. */
export const RestoreKind = defineKind({
  group: GROUP,
  version: VERSION,
  kind: "Restore",
  plural: "restores",
  singular: "restore",
  shortNames: ["rst"],
  categories: ["dbtether"],
  scope: "Namespaced",
  description: "Restore streams a stored dump into a Database.",
  spec,
  status: optional(status),
  printerColumns: [
    { name: "Target", type: "string", jsonPath: ".spec.target.databaseRef.name" },
    { name: "Source", type: "string", jsonPath: ".status.sourcePath" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Duration", type: "string", jsonPath: ".status.duration" },
    ageColumn,
  ],
});
