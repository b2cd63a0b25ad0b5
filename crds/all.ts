/** Every kind dbtether serves, in the order the CRDs are generated and documented. */
import type { KindDefinition } from "./kind.ts";
import { DBClusterKind } from "./dbcluster.ts";
import { DatabaseKind } from "./database.ts";
import { DatabaseUserKind } from "./database_user.ts";
import { BackupStorageKind } from "./backup_storage.ts";
import { BackupKind } from "./backup.ts";
import { BackupScheduleKind } from "./backup_schedule.ts";
import { RestoreKind } from "./restore.ts";
import { PostgresDatabaseKind } from "./postgres_database.ts";

/** All kind definitions, each with its CRD manifest. */
export const ALL_KINDS: readonly KindDefinition<unknown, unknown>[] = [
  DBClusterKind,
  DatabaseKind,
  DatabaseUserKind,
  BackupStorageKind,
  BackupKind,
  BackupScheduleKind,
  RestoreKind,
  PostgresDatabaseKind,
] as KindDefinition<unknown, unknown>[];
