/**
 * DBCluster: an existing PostgreSQL server (RDS, Aurora, Azure, self-hosted) that dbtether
 * connects to with an admin role. Cluster-scoped; Databases and DatabaseUsers point at it.
 */
import { enumOf, type Infer, int, obj, optional, str, withDefault } from "./schema.ts";
import {
  ageColumn,
  allowedNamespacesField,
  conditionsField,
  defineKind,
  duration,
  GROUP,
  type KubeObject,
  messageField,
  namespaceName,
  objectName,
  observedGenerationField,
  secretRef,
  timestamp,
  VERSION,
} from "./kind.ts";

const ENV_VAR = "^[A-Za-z_][A-Za-z0-9_]*$";

/** The TLS modes dbtether accepts, as libpq names them. */
export const SSL_MODES = ["disable", "require", "verify-ca", "verify-full"] as const;
/** How a DBCluster connects to its server over TLS. */
export type SslMode = typeof SSL_MODES[number];

const spec = obj({
  endpoint: str({
    minLength: 1,
    maxLength: 253,
    description: "Hostname or IP address of the PostgreSQL server, e.g. " +
      "my-cluster.cluster-xxx.eu-west-1.rds.amazonaws.com.",
  }),
  port: withDefault(
    int({ minimum: 1, maximum: 65535, description: "TCP port of the server." }),
    5432,
  ),
  credentialsSecretRef: optional(secretRef(
    "Secret holding the admin role's credentials in the keys username and password. " +
      "Exactly one of credentialsSecretRef and credentialsFromEnv is set. When the Secret " +
      "changes (the admin password rotated), connections are rebuilt without a restart.",
  )),
  credentialsFromEnv: optional(obj({
    username: str({
      pattern: ENV_VAR,
      maxLength: 256,
      description: "Name of the operator's environment variable holding the admin username.",
    }),
    password: str({
      pattern: ENV_VAR,
      maxLength: 256,
      description: "Name of the operator's environment variable holding the admin password.",
    }),
  }, {
    description: "Read the admin credentials from environment variables of the operator " +
      "process instead of a Secret; used by every controller, not only the health check.",
  })),
  sslMode: withDefault(
    enumOf(SSL_MODES, {
      description: "TLS mode, as libpq's sslmode: disable, require (encrypt, do not verify), " +
        "verify-ca (verify the certificate chain) or verify-full (also the hostname).",
    }),
    "require" as SslMode,
  ),
  caSecretRef: optional(obj({
    name: objectName({ description: "Name of the Secret." }),
    namespace: namespaceName({ description: "Namespace of the Secret." }),
    key: withDefault(
      str({ minLength: 1, maxLength: 253, description: "Key holding the PEM bundle." }),
      "ca.crt",
    ),
  }, {
    description: "Secret with the CA certificate(s) (PEM) that sign the server's certificate, " +
      "for verify-ca and verify-full. Unset: the system trust store.",
  })),
  maxConnections: withDefault(
    int({
      minimum: 1,
      maximum: 100,
      description: "Size of this DBCluster's connection pool (per replica), across all " +
        "databases of its server; other DBClusters on the same server have their own.",
    }),
    5,
  ),
  healthCheckInterval: withDefault(
    duration({ description: "How often the connection is checked (Go duration)." }),
    "5m",
  ),
  allowedNamespaces: allowedNamespacesField("DBCluster"),
}, {
  description: "Where the PostgreSQL server is and how to log in as its admin role.",
  rules: [{
    rule: "has(self.credentialsSecretRef) != has(self.credentialsFromEnv)",
    message: "exactly one of credentialsSecretRef and credentialsFromEnv must be set",
  }],
});

/** The phases a DBCluster reports. */
export const DBCLUSTER_PHASES = ["Pending", "Connected", "Failed"] as const;

const status = obj({
  phase: optional(enumOf(DBCLUSTER_PHASES, {
    description: "Summary of Ready: Connected when the last check succeeded.",
  })),
  message: messageField,
  version: optional(str({
    maxLength: 64,
    description: "Short server version, e.g. 15.4.",
  })),
  versionNum: optional(int({
    minimum: 0,
    description: "server_version_num, e.g. 150004; chooses the pg_dump for backups.",
  })),
  lastCheckTime: timestamp("When the connection was last checked."),
  observedGeneration: observedGenerationField,
  conditions: conditionsField,
});

/** The desired state of a DBCluster. */
export type DBClusterSpec = Infer<typeof spec>;
/** The observed state of a DBCluster. */
export type DBClusterStatus = Infer<typeof status>;
/** A DBCluster object. */
export type DBCluster = KubeObject<DBClusterSpec, DBClusterStatus>;

/** The DBCluster kind: its CRD and its API descriptor. */
export const DBClusterKind = defineKind({
  group: GROUP,
  version: VERSION,
  kind: "DBCluster",
  plural: "dbclusters",
  singular: "dbcluster",
  shortNames: ["dbc"],
  categories: ["dbtether"],
  scope: "Cluster",
  description: "DBCluster is an existing PostgreSQL server that dbtether manages databases " +
    "and users in, reached with an admin role that need not be superuser.",
  spec,
  status: optional(status),
  printerColumns: [
    { name: "Endpoint", type: "string", jsonPath: ".spec.endpoint" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Version", type: "string", jsonPath: ".status.version" },
    ageColumn,
  ],
});
