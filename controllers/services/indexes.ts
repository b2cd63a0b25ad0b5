/**
 * Index functions on our kinds that several controllers share: the Databases of a DBCluster
 * (the Database and DatabaseUser controllers both map a DBCluster event to them).
 */
import type { Database } from "../../crds/database.ts";

/** Databases by spec.clusterRef.name. */
export const DATABASE_CLUSTER_INDEX = "clusterRef";

export function databaseCluster(d: Database): string[] {
  const name = d.spec?.clusterRef?.name;
  return name ? [name] : [];
}
