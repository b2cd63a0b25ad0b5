/** Which DBCluster changes re-queue the objects that use the cluster. Pure. */
import type { DBCluster } from "../../crds/dbcluster.ts";
import { getCondition } from "../runtime/conditions.ts";

/** Whether a DBCluster change can change what its Databases do. */
export function clusterChangeMatters(c: DBCluster, old: DBCluster | undefined): boolean {
  if (!old) return true;
  const ready = (x: DBCluster) => getCondition(x.status?.conditions, "Ready")?.status;
  return c.metadata.generation !== old.metadata.generation ||
    c.status?.phase !== old.status?.phase || ready(c) !== ready(old) ||
    c.metadata.deletionTimestamp !== old.metadata.deletionTimestamp;
}
