/**
 * Which informer events bring a Database back: a change of the Database itself, a change of
 * its DBCluster that matters to it (services/cluster_changes.ts), including its deletion, and a
 * change of a DatabaseUser one of its schemas names as owner.
 */
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import { type DatabaseUser, DatabaseUserKind } from "../../crds/database_user.ts";
import { getCondition } from "../runtime/conditions.ts";
import { clusterChangeMatters } from "../services/cluster_changes.ts";
import { DATABASE_CLUSTER_INDEX, databaseCluster } from "../services/indexes.ts";
import { objectKey } from "../runtime/informer.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";

/** Keys of the Databases that use DBCluster `name`, from the informer cache. */
export function databasesOfCluster(databases: readonly Database[], name: string): string[] {
  return databases.filter((d) => d.spec.clusterRef.name === name).map(objectKey);
}

/** Databases by `namespace/name` of each DatabaseUser their schemas name as owner. */
export const DATABASE_SCHEMA_OWNER_INDEX = "schemaOwner";

/** The index values of {@link DATABASE_SCHEMA_OWNER_INDEX}: users of the Database's namespace. */
export function schemaOwnerUsers(d: Database): string[] {
  const names = (d.spec?.schemas ?? []).flatMap((s) =>
    s.owner?.databaseUser ? [s.owner.databaseUser] : []
  );
  return [...new Set(names)].map((n) => `${d.metadata.namespace}/${n}`);
}

/**
 * Whether a DatabaseUser's update can change whether it may own a schema: its spec (the
 * Databases it names, its role name, its rotation), its deletion, or its Ready condition (its
 * role was created). Not its Secret rotating, or its status otherwise.
 */
export function userChangeMattersToOwners(u: DatabaseUser, old: DatabaseUser | undefined) {
  if (!old) return true;
  if (u.metadata.generation !== old.metadata.generation) return true;
  if (u.metadata.deletionTimestamp !== old.metadata.deletionTimestamp) return true;
  const a = getCondition(u.status?.conditions, "Ready");
  const b = getCondition(old.status?.conditions, "Ready");
  return a?.status !== b?.status;
}

/** The Database controller's watches: its own objects, their DBClusters and schema owners. */
export function databaseWatches(deps: ControllerDeps): Watches {
  const databases = deps.informers.for<Database>(DatabaseKind)
    .withIndex(DATABASE_CLUSTER_INDEX, databaseCluster)
    .withIndex(DATABASE_SCHEMA_OWNER_INDEX, schemaOwnerUsers);
  const clusters = deps.informers.for<DBCluster>(DBClusterKind);
  const users = deps.informers.for<DatabaseUser>(DatabaseUserKind);
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
    controller.watch(
      users,
      (u, old, deleted) =>
        deleted || userChangeMattersToOwners(u, old)
          ? databases.byIndex(DATABASE_SCHEMA_OWNER_INDEX, objectKey(u)).map(objectKey)
          : [],
    );
  };
}
