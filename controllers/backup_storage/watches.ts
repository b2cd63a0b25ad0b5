/**
 * Which informer events bring a BackupStorage back: a change of the BackupStorage itself, and
 * any event of the Secret it reads its credentials from.
 */
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import type { KubeObject } from "../runtime/types.ts";
import { SecretResource } from "../runtime/kube.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import { storagesUsingSecret } from "../services/storage_access.ts";

/** The BackupStorage controller's watches: its objects and their credentials Secrets. */
export function backupStorageWatches(deps: ControllerDeps): Watches {
  const storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  const secrets = deps.informers.for<KubeObject<unknown, unknown>>(SecretResource, {
    metadataOnly: true,
  });
  return (controller) => {
    controller.watch(storages);
    controller.watch(
      secrets,
      (s) => storagesUsingSecret(storages.list(), s.metadata.namespace ?? "", s.metadata.name),
    );
  };
}
