/**
 * Backup: one pg_dump of a Database, streamed through gzip or zstd into a BackupStorage by the
 * operator process itself.
 */
import { enumOf, type Infer, int, obj, optional, str, withDefault } from "./schema.ts";
import {
  ageColumn,
  conditionsField,
  defineKind,
  duration,
  GROUP,
  type KubeObject,
  localRef,
  messageField,
  observedGenerationField,
  timestamp,
  VERSION,
} from "./kind.ts";
import { templateField } from "./backup_storage.ts";
import {
  COMPRESSION_ALGORITHMS,
  COMPRESSION_LEVELS,
  type CompressionAlgorithm,
} from "../backup/compression.ts";

/** Dump formats: plain SQL (restored with psql) or pg_dump's custom format (pg_restore). */
export const BACKUP_FORMATS = ["plain", "custom"] as const;
/** A dump format. */
export type BackupFormat = typeof BACKUP_FORMATS[number];

/** The fields a Backup and a BackupSchedule share: what to dump, where, and how. */
export const backupTemplateFields = {
  databaseRef: localRef("The Database to back up, in this namespace.", "Name of the Database."),
  storageRef: localRef("The BackupStorage to write to.", "Name of the BackupStorage."),
  filenameTemplate: optional(templateField(
    "filenameTemplate",
    "Name of the dump under the storage's pathTemplate, from the variables ClusterName, " +
      "DatabaseName, Namespace, Timestamp (UTC YYYYMMDD-HHMMSS), Year, Month, Day and RunID. " +
      "Unset: {{ .Timestamp }}-{{ .RunID }}.sql.gz for plain with gzip, .sql.zst for plain with " +
      "zstd, {{ .Timestamp }}-{{ .RunID }}.dump for custom. The name does not decide how a " +
      "restore decompresses (the manifest and the object's first bytes do). A stored object is never overwritten: a template without RunID makes two " +
      "Backups in one second collide, and the second fails with ObjectExists.",
  )),
  format: withDefault(
    enumOf(BACKUP_FORMATS, {
      description: "plain: SQL text (restored with psql); custom: pg_dump's archive format " +
        "(restored with pg_restore).",
    }),
    "plain" as BackupFormat,
  ),
  compression: withDefault(compression(), {} as {
    algorithm: CompressionAlgorithm;
    level?: number;
  }),
};

/** spec.compression: the codec, and a level whose range depends on it (checked by CEL). */
function compression() {
  const { gzip, zstd } = COMPRESSION_LEVELS;
  return obj({
    algorithm: withDefault(
      enumOf(COMPRESSION_ALGORITHMS, {
        description: "gzip (default) or zstd. For plain, dbtether compresses the SQL with it; " +
          "for custom, pg_dump compresses inside the archive (zstd there needs pg_dump 16 or " +
          "newer, and pg_restore 16 or newer to restore).",
      }),
      "gzip" as CompressionAlgorithm,
    ),
    level: optional(int({
      minimum: Math.min(gzip.min, zstd.min),
      maximum: Math.max(gzip.max, zstd.max),
      description: `gzip: ${gzip.min}-${gzip.max}, default ${gzip.default} (0 stores ` +
        `uncompressed); zstd: ${zstd.min}-${zstd.max}, default ${zstd.default}.`,
    })),
  }, {
    description: "Compression of the stored dump.",
    rules: [
      {
        rule: `self.algorithm != 'gzip' || !has(self.level) || self.level <= ${gzip.max}`,
        message: `gzip levels are ${gzip.min} to ${gzip.max}`,
      },
      {
        rule: `self.algorithm != 'zstd' || !has(self.level) || self.level >= ${zstd.min}`,
        message: `zstd levels are ${zstd.min} to ${zstd.max}`,
      },
    ],
  });
}

const spec = obj({
  ...backupTemplateFields,
  ttlAfterCompletion: optional(duration({
    description: "Delete this Backup resource that long after it completed (Go duration, " +
      "e.g. 1h). The stored dump is kept. Unset: keep the resource.",
  })),
}, {
  description: "What to back up and where. Immutable: create a new Backup to back up again.",
  rules: [{
    rule: "self == oldSelf",
    message: "a Backup's spec is immutable: create a new Backup instead",
  }],
});

/** The phases a Backup goes through. */
export const BACKUP_PHASES = ["Pending", "Running", "Completed", "Failed"] as const;
/** A Backup's phase. */
export type BackupPhase = typeof BACKUP_PHASES[number];

const bytes = (description: string) => optional(int({ minimum: 0, description }));

const status = obj({
  phase: optional(enumOf(BACKUP_PHASES, {
    description: "Pending (waiting for its turn or its dependencies), Running, Completed " +
      "or Failed.",
  })),
  message: messageField,
  clusterName: optional(str({ maxLength: 253, description: "The DBCluster dumped." })),
  databaseName: optional(str({ maxLength: 63, description: "The database dumped." })),
  storageName: optional(str({ maxLength: 253, description: "The BackupStorage written to." })),
  path: optional(str({ maxLength: 4096, description: "Key of the dump in the storage." })),
  size: optional(str({
    maxLength: 32,
    description: "Stored (compressed) size for humans, e.g. 12.3 MiB: the SIZE column.",
  })),
  sizeBytes: bytes("Stored (compressed) size in bytes."),
  uncompressedBytes: bytes("Size of pg_dump's output in bytes."),
  sha256: optional(str({
    pattern: "^[a-f0-9]{64}$",
    description: "SHA-256 of the stored object, hex.",
  })),
  format: optional(enumOf(BACKUP_FORMATS, { description: "The dump format." })),
  counts: optional(obj({
    tables: optional(int({ minimum: 0, description: "Ordinary tables dumped with data." })),
    rows: optional(int({ minimum: 0, description: "Rows in them." })),
    digest: optional(str({
      pattern: "^[a-f0-9]{16}$",
      description: "Digest of the per-table counts (the list is in the manifest).",
    })),
  }, {
    description: "Tables and rows counted in the snapshot pg_dump dumped (exact); absent " +
      "when they could not be counted.",
  })),
  duration: optional(str({
    maxLength: 32,
    description: "How long the backup ran, e.g. 1m23s: the DURATION column.",
  })),
  startedAt: timestamp("When the dump started."),
  completedAt: timestamp("When the backup completed or failed."),
  progress: optional(obj({
    bytes: bytes("Stored bytes so far."),
    uncompressedBytes: bytes("Bytes pg_dump has written so far."),
    updatedAt: timestamp("When progress was last recorded."),
  }, { description: "While Running: how far the dump has got, updated every few seconds." })),
  attempts: optional(int({
    minimum: 0,
    description: "How many times the backup was started: the first run, retries after an " +
      "interruption and retries after a storage failure.",
  })),
  interruptions: optional(int({
    minimum: 0,
    description: "How many runs were cut short by an operator restart, crash or leader " +
      "change; at --backup-max-attempts the Backup fails with RetriesExhausted.",
  })),
  storageFailures: optional(int({
    minimum: 0,
    description: "How many runs in a row failed on the storage (unreachable, server errors); " +
      "they are retried with a capped exponential backoff for --backup-storage-retry-for.",
  })),
  storageFailingSince: timestamp(
    "When the storage failures being retried began (the first failure of the current outage).",
  ),
  nextRetryAt: timestamp("While Pending after a storage failure: when the next run starts."),
  leftoversRemovedAt: timestamp(
    "Failed only: when what its runs left at status.path (a partial or unrecorded dump, its " +
      "manifest, incomplete multipart uploads) was removed, or found absent.",
  ),
  pgDumpVersion: optional(str({ maxLength: 64, description: "Version of the pg_dump used." })),
  serverVersion: optional(str({ maxLength: 64, description: "Version of the server dumped." })),
  observedGeneration: observedGenerationField,
  conditions: conditionsField,
});

/** The desired state of a Backup. */
export type BackupSpec = Infer<typeof spec>;
/** The observed state of a Backup. */
export type BackupStatus = Infer<typeof status>;
/** A Backup object. */
export type Backup = KubeObject<BackupSpec, BackupStatus>;

/** The Backup kind: its CRD and its API descriptor. */
export const BackupKind = defineKind({
  group: GROUP,
  version: VERSION,
  kind: "Backup",
  plural: "backups",
  singular: "backup",
  shortNames: ["bkp"],
  categories: ["dbtether"],
  scope: "Namespaced",
  description: "Backup is one pg_dump of a Database into a BackupStorage.",
  spec,
  status: optional(status),
  printerColumns: [
    { name: "Database", type: "string", jsonPath: ".spec.databaseRef.name" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Size", type: "string", jsonPath: ".status.size" },
    { name: "Duration", type: "string", jsonPath: ".status.duration" },
    ageColumn,
  ],
});
