/** BackupSchedule and Backup objects for the unit tests of this folder. */
import type { Backup } from "../../crds/backup.ts";
import type { BackupSchedule } from "../../crds/backup_schedule.ts";
import { backupTemplate } from "../../tests/helpers/objects.ts";
import { backupNameForSlot, SLOT_ANNOTATION } from "./names.ts";

export const SCHEDULE_UID = "5c0e0000-0000-4000-8000-000000000001";

export function schedule(
  spec: Partial<BackupSchedule["spec"]> = {},
  o: { created?: string; status?: BackupSchedule["status"] } = {},
): BackupSchedule {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "BackupSchedule",
    metadata: {
      name: "nightly",
      namespace: "team",
      uid: SCHEDULE_UID,
      generation: 1,
      creationTimestamp: o.created ?? "2026-01-01T00:00:00Z",
    },
    spec: backupTemplate({
      schedule: "0 * * * *",
      suspend: false,
      concurrencyPolicy: "Forbid" as const,
      ...spec,
    }),
    ...(o.status ? { status: o.status } : {}),
  };
}

/** A Backup this schedule owns, for `slot`, in `phase` (completed at the slot + 1 minute). */
export function scheduled(
  slot: string,
  phase: NonNullable<Backup["status"]>["phase"] | undefined,
  o: { owner?: string; name?: string; extra?: Partial<NonNullable<Backup["status"]>> } = {},
): Backup {
  const t = Date.parse(slot);
  const done = phase === "Completed" || phase === "Failed";
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Backup",
    metadata: {
      name: o.name ?? backupNameForSlot("nightly", t),
      namespace: "team",
      uid: `uid-${t}`,
      creationTimestamp: slot,
      annotations: { [SLOT_ANNOTATION]: new Date(t).toISOString() },
      ownerReferences: [{
        apiVersion: "dbtether.io/v1alpha1",
        kind: "BackupSchedule",
        name: "nightly",
        uid: o.owner ?? SCHEDULE_UID,
        controller: true,
      }],
    },
    spec: {
      databaseRef: { name: "app" },
      storageRef: { name: "s" },
      format: "plain",
      compression: { algorithm: "gzip", level: 6 },
    },
    ...(phase
      ? {
        status: {
          phase,
          ...(done ? { completedAt: new Date(t + 60_000).toISOString() } : {}),
          ...(phase === "Completed"
            ? { path: `main/app/${t}.sql.gz`, sha256: "a".repeat(64), sizeBytes: 10 }
            : {}),
          ...o.extra,
        },
      }
      : {}),
  };
}
