/**
 * Which informer events bring a Database back: a change of the Database itself, and a change of
 * its DBCluster that matters to it (services/cluster_changes.ts), including its deletion.
 */
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import { clusterChangeMatters } from "../services/cluster_changes.ts";
import { DATABASE_CLUSTER_INDEX, databaseCluster } from "../services/indexes.ts";
import { objectKey } from "../runtime/informer.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";

/** Keys of the Databases that use DBCluster `name`, from the informer cache. */
export function databasesOfCluster(databases: readonly Database[], name: string): string[] {
  return databases.filter((d) => d.spec.clusterRef.name === name).map(objectKey);
}

/** The Database controller's watches: its own objects and their DBClusters. */
export function databaseWatches(deps: ControllerDeps): Watches {
  const databases = deps.informers.for<Database>(DatabaseKind)
    .withIndex(DATABASE_CLUSTER_INDEX, databaseCluster);
  const clusters = deps.informers.for<DBCluster>(DBClusterKind);
  return (controller) => {
    controller.watch(databases);
    controller.resync(databases);
    controller.watch(
      clusters,
      (c, old, deleted) =>
        deleted || clusterChangeMatters(c, old)
          ? databasesOfCluster(
            databases.byIndex(DATABASE_CLUSTER_INDEX, c.metadata.name),
            c.metadata.name,
          )
          : [],
    );
  };
}
