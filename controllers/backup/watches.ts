/**
 * Which events reach the Backup controller: its own Backups, and the Databases and
 * BackupStorages a waiting Backup depends on (it starts as soon as they become Ready).
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { objectKey } from "../runtime/informer.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";

/** Backups by `namespace/name` of their Database. */
const BACKUP_DATABASE_INDEX = "databaseRef";
/** Backups by spec.storageRef.name. */
const BACKUP_STORAGE_INDEX = "storageRef";

function backupDatabase(b: Backup): string[] {
  const name = b.spec?.databaseRef?.name;
  return name ? [`${b.metadata.namespace}/${name}`] : [];
}

function backupStorage(b: Backup): string[] {
  const name = b.spec?.storageRef?.name;
  return name ? [name] : [];
}

/** The keys of the Backups that match and have not finished. */
export function waitingBackups(all: readonly Backup[], match: (b: Backup) => boolean): string[] {
  return all.filter((b) =>
    match(b) && b.status?.phase !== "Completed" && b.status?.phase !== "Failed"
  ).map(objectKey);
}

/** The Backup controller's watches. */
export function backupWatches(deps: Pick<ControllerDeps, "informers">): Watches {
  const backups = deps.informers.for<Backup>(BackupKind)
    .withIndex(BACKUP_DATABASE_INDEX, backupDatabase)
    .withIndex(BACKUP_STORAGE_INDEX, backupStorage);
  const databases = deps.informers.for<Database>(DatabaseKind);
  const storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  return (controller) => {
    controller.watch(backups);
    controller.watch(
      databases,
      (d) =>
        waitingBackups(
          backups.byIndex(BACKUP_DATABASE_INDEX, objectKey(d)),
          (x) =>
            x.metadata.namespace === d.metadata.namespace &&
            x.spec.databaseRef.name === d.metadata.name,
        ),
    );
    controller.watch(
      storages,
      (s) =>
        waitingBackups(
          backups.byIndex(BACKUP_STORAGE_INDEX, s.metadata.name),
          (x) => x.spec.storageRef.name === s.metadata.name,
        ),
    );
  };
}
