/**
 * Which events reach the BackupSchedule controller: its own schedules (spec and metadata
 * changes), every phase change or deletion of a Backup it owns (a finished Backup lets a
 * waiting slot start and opens retention), and changes of the BackupStorages they use.
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type BackupSchedule, BackupScheduleKind } from "../../crds/backup_schedule.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { objectKey } from "../runtime/informer.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";

/** Schedules by spec.storageRef.name. */
const SCHEDULE_STORAGE_INDEX = "storageRef";

function scheduleStorage(s: BackupSchedule): string[] {
  const name = s.spec?.storageRef?.name;
  return name ? [name] : [];
}

/** The key of the schedule that controls `b`, if a BackupSchedule does. */
export function ownerSchedule(b: Backup): string | undefined {
  const ref = (b.metadata.ownerReferences ?? []).find((r) =>
    r.controller === true && r.kind === "BackupSchedule" &&
    r.apiVersion === BackupScheduleKind.apiVersion
  );
  return ref ? `${b.metadata.namespace}/${ref.name}` : undefined;
}

/** The BackupSchedule controller's watches. */
export function backupScheduleWatches(deps: Pick<ControllerDeps, "informers">): Watches {
  const schedules = deps.informers.for<BackupSchedule>(BackupScheduleKind)
    .withIndex(SCHEDULE_STORAGE_INDEX, scheduleStorage);
  const backups = deps.informers.for<Backup>(BackupKind);
  const storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  return (controller) => {
    controller.watch(schedules);
    controller.watch(backups, (b, old, deleted) => {
      const key = ownerSchedule(b);
      if (!key) return [];
      const changed = deleted || !old || old.status?.phase !== b.status?.phase;
      return changed ? [key] : [];
    });
    controller.watch(
      storages,
      (st) => schedules.byIndex(SCHEDULE_STORAGE_INDEX, st.metadata.name).map(objectKey),
    );
  };
}
