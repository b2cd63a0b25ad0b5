/** The DBCluster the unit tests of this folder start from. */
import type { DBCluster } from "../../crds/dbcluster.ts";

/** DBCluster "main" at generation 3 with `status` and `spec` overrides. */
export function cluster(
  status?: DBCluster["status"],
  spec: Partial<DBCluster["spec"]> = {},
): DBCluster {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "DBCluster",
    metadata: { name: "main", generation: 3 },
    spec: {
      endpoint: "127.0.0.1",
      port: 5432,
      sslMode: "disable",
      maxConnections: 5,
      healthCheckInterval: "5m",
      isolation: "Restrict",
      ...spec,
    },
    ...(status ? { status } : {}),
  };
}
