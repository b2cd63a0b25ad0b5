/** Objects the unit tests of several kinds start from (no server needed). */
import type { Database } from "../../crds/database.ts";
import type { Condition } from "../../controllers/runtime/types.ts";

/** A Ready=True condition list, as a Database or a BackupStorage that works reports it. */
export const READY: Condition[] = [{
  type: "Ready",
  status: "True",
  reason: "Ready",
  message: "",
  lastTransitionTime: "2026-01-01T00:00:00Z",
}];

/** A Ready Database `name` in `namespace` whose database is `<name>_db` on DBCluster "main". */
export function readyDatabase(name: string, namespace: string): Database {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Database",
    metadata: { name, namespace },
    spec: { clusterRef: { name: "main" }, deletionPolicy: "Retain", revokePublicConnect: true },
    status: { phase: "Ready", databaseName: `${name}_db`, conditions: READY },
  };
}

/**
 * The spec fields a Backup and a BackupSchedule share, as the tests start from them: Database
 * "app" to storage "s", plain SQL with gzip 6; `over` replaces or adds fields.
 */
export function backupTemplate<T extends object>(over: T) {
  return {
    databaseRef: { name: "app" },
    storageRef: { name: "s" },
    format: "plain" as const,
    compression: { algorithm: "gzip" as const, level: 6 },
    ...over,
  };
}
