/**
 * Which events reach the Restore controller: its own Restores, the Backups of their namespace
 * (a source may complete), and their target Databases (a target may become Ready).
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type Restore, RestoreKind } from "../../crds/restore.ts";
import { objectKey } from "../runtime/informer.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import { NAMESPACE_INDEX, namespaceOf } from "../runtime/indexes.ts";

/** The Restore controller's watches. */
export function restoreWatches(deps: Pick<ControllerDeps, "informers">): Watches {
  const restores = deps.informers.for<Restore>(RestoreKind).withIndex(NAMESPACE_INDEX, namespaceOf);
  const backups = deps.informers.for<Backup>(BackupKind);
  const databases = deps.informers.for<Database>(DatabaseKind);
  const waiting = (namespace: string | undefined, match: (r: Restore) => boolean) =>
    restores.byIndex(NAMESPACE_INDEX, namespace ?? "").filter((r) =>
      match(r) && r.status?.phase !== "Completed" && r.status?.phase !== "Failed"
    ).map(objectKey);
  return (controller) => {
    controller.watch(restores);
    controller.watch(
      backups,
      (b) => waiting(b.metadata.namespace, (r) => r.metadata.namespace === b.metadata.namespace),
    );
    controller.watch(
      databases,
      (d) =>
        waiting(d.metadata.namespace, (r) =>
          r.metadata.namespace === d.metadata.namespace &&
          r.spec.target.databaseRef.name === d.metadata.name),
    );
  };
}
