/**
 * Which informer events bring a BackupStorage back: a change of the BackupStorage itself, any
 * event of the Secret it reads its credentials from, and a Backup's outcome that contradicts
 * its Ready condition (status.ts reprobeDelay).
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import type { KubeObject } from "../runtime/types.ts";
import { SecretResource } from "../runtime/kube.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import { storagesUsingSecret } from "../services/storage_access.ts";
import { reprobeDelay } from "./status.ts";

/** The BackupStorage controller's watches: its objects, their Secrets and their Backups. */
export function backupStorageWatches(deps: ControllerDeps): Watches {
  const storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  const secrets = deps.informers.for<KubeObject<unknown, unknown>>(SecretResource, {
    metadataOnly: true,
  });
  const backups = deps.informers.for<Backup>(BackupKind);
  return (controller) => {
    controller.watch(storages);
    controller.watch(
      secrets,
      (s) => storagesUsingSecret(storages.list(), s.metadata.namespace ?? "", s.metadata.name),
    );
    controller.watch(backups, (b, old, deleted) => {
      const name = b.spec?.storageRef?.name;
      const ms = name && !deleted
        ? reprobeDelay(storages.get(name), b, old, deps.clock.now())
        : undefined;
      if (name && ms !== undefined) controller.enqueueAfter(name, ms);
      return [];
    });
  };
}
