/**
 * DBCluster: an existing PostgreSQL server (RDS, Aurora, Azure, self-hosted) that dbtether
 * connects to with an admin role. Cluster-scoped; Databases and DatabaseUsers point at it.
 */
import { arr, bool, enumOf, type Infer, int, obj, optional, str, withDefault } from "./schema.ts";
import {
  NEVER_ROLE_SETTING_PREFIX,
  NEVER_ROLE_SETTINGS,
  SETTING_NAME_PATTERN,
} from "../controllers/postgres/statements.ts";
import {
  ageColumn,
  allowedNamespacesField,
  conditionsField,
  defineKind,
  duration,
  GROUP,
  type KubeObject,
  messageField,
  namespaceGrantField,
  namespaceName,
  objectName,
  observedGenerationField,
  secretRef,
  timestamp,
  VERSION,
} from "./kind.ts";

const ENV_VAR = "^[A-Za-z_][A-Za-z0-9_]*$";

/** What dbtether does about the server's databases it does not manage (spec.isolation). */
export const ISOLATION_MODES = ["Restrict", "Keep"] as const;
/** A DBCluster's isolation mode. */
export type IsolationMode = typeof ISOLATION_MODES[number];

/** How the operator may log in to its server by cloud IAM (spec.authentication.type). */
export const CLUSTER_AUTHENTICATION_TYPES = ["awsIam", "azureEntra"] as const;
/** A DBCluster's IAM login type. */
export type ClusterAuthenticationType = typeof CLUSTER_AUTHENTICATION_TYPES[number];

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
  readerEndpoint: optional(obj({
    host: str({
      minLength: 1,
      maxLength: 253,
      description: "Hostname or IP address of the read-only endpoint.",
    }),
    port: optional(int({
      minimum: 1,
      maximum: 65535,
      description: "TCP port of the read-only endpoint; default spec.port.",
    })),
  }, {
    description: "A read-only endpoint of the same data (an Aurora reader endpoint, a " +
      "Service of replicas). When set, every DatabaseUser Secret also carries reader keys " +
      "(readerHost, readerPort and uri_ro in raw; <PREFIX>_READER_HOST and _READER_PORT in DB, " +
      "DATABASE and POSTGRES; dsn_ro in dsn). dbtether itself never connects to it. Unset: " +
      "the Secrets carry no reader keys.",
  })),
  credentialsSecretRef: optional(secretRef(
    "Secret holding the admin role's credentials in the keys username and password. " +
      "Exactly one of credentialsSecretRef, credentialsFromEnv and authentication is set. When the Secret " +
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
  authentication: optional(obj({
    type: enumOf(CLUSTER_AUTHENTICATION_TYPES, {
      description: "awsIam: an RDS IAM token from the AWS SDK's default credential chain " +
        "(IRSA or EKS Pod Identity in a pod), signed for endpoint, port and username. " +
        "azureEntra: an Entra ID access token from @azure/identity's DefaultAzureCredential " +
        "(workload identity in a pod). Tokens are refreshed before they expire (the " +
        "operator's --iam-token-refresh) and never logged or written to status.",
    }),
    username: str({
      minLength: 1,
      maxLength: 63,
      description: "The admin role to log in as (awsIam: a role granted rds_iam; azureEntra: " +
        "the Entra principal's role name).",
    }),
    region: optional(str({
      pattern: "^[a-z]{2}(-[a-z]+)+-[0-9]+$",
      maxLength: 32,
      description: "AWS region of the server, e.g. eu-west-1; required for awsIam.",
    })),
    scope: optional(str({
      minLength: 1,
      maxLength: 256,
      description: "azureEntra: the token scope; default " +
        "https://ossrdbms-aad.database.windows.net/.default.",
    })),
  }, {
    description: "Log in as the admin role with a cloud IAM token instead of a password. " +
      "Exactly one of credentialsSecretRef, credentialsFromEnv and authentication is set.",
    rules: [{
      rule: "self.type != 'awsIam' || has(self.region)",
      message: "authentication.region is required for awsIam",
    }, {
      rule: "self.type == 'azureEntra' || !has(self.scope)",
      message: "authentication.scope applies to azureEntra only",
    }],
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
  isolation: withDefault(
    enumOf(ISOLATION_MODES, {
      description: "What to do about the databases on the server that dbtether does not " +
        "manage (postgres and any others; not templates). Restrict: where PUBLIC may connect, " +
        "replace that with CONNECT for each login role that exists then and was not created " +
        "by dbtether, so the roles dbtether creates reach only the databases they are granted " +
        "and nobody else loses access; databases whose owner the admin cannot act for are " +
        "reported in the Isolated condition. Keep: leave them alone (every role dbtether " +
        "creates can connect to them). Switching to Keep does not give CONNECT back to PUBLIC.",
    }),
    "Restrict" as IsolationMode,
  ),
  adoption: optional(obj({
    allowedNamespaces: namespaceGrantField(
      "Namespaces whose Databases, DatabaseUsers and PostgresDatabases may take over what " +
        "already exists on this server: a database (annotation dbtether.io/force-adopt on a " +
        "Database, dbtether.io/adopt on a PostgresDatabase) or a role (dbtether.io/adopt). " +
        "Roles with privileges beyond their own databases, and objects claimed by another " +
        "namespace, are refused even here.",
    ),
  }, {
    description: "The platform team's consent to adoption. Without it, existing databases " +
      "and roles are never taken over: the resource reports why and nothing is changed.",
  })),
  allowedTablespaces: optional(arr(
    str({ minLength: 1, maxLength: 63, pattern: "^[^\\x00]+$" }),
    {
      maxItems: 64,
      listType: "set",
      description: "Tablespaces the Databases on this server may be created in " +
        "(Database.spec.tablespace), besides pg_default. The admin role needs CREATE on each. " +
        "Unset or empty: none.",
    },
  )),
  allowTemplateDatabases: optional(bool({
    description: "Whether Databases on this server may set spec.isTemplate: true. A template " +
      "database can be cloned, with all its data, by any role with CREATEDB. Default false.",
  })),
  secretDelivery: optional(obj({
    allow: arr(
      obj({
        sourceNamespace: namespaceName({
          description: "Namespace of the DatabaseUsers (on this DBCluster) that may deliver.",
        }),
        targetNamespaces: arr(namespaceName(), {
          minItems: 1,
          maxItems: 64,
          listType: "set",
          description: "Namespaces they may deliver their Secrets to.",
        }),
      }),
      {
        maxItems: 256,
        description: "Pairs source namespace -> target namespaces, by name (no wildcards).",
      },
    ),
  }, {
    description: "The platform team's consent to cross-namespace credentials delivery " +
      "(DatabaseUser spec.secret.namespace). Unset: no DatabaseUser on this DBCluster may " +
      "deliver a Secret outside its own namespace; removing a pair deletes its copies.",
  })),
  grantableRoles: optional(arr(
    str({ minLength: 1, maxLength: 63, pattern: "^[^\\x00]+$" }),
    {
      maxItems: 64,
      listType: "set",
      description: "Roles outside dbtether that DatabaseUsers on this server may ask for in " +
        "spec.memberOf, e.g. pg_read_all_data, pg_monitor, pg_signal_backend. Unset: none. " +
        "Even when listed, dbtether grants only a role that exists, is not a login role, a " +
        "superuser, the admin role or one of dbtether's, and that the admin role holds WITH " +
        "ADMIN OPTION. Listing a role gives it to every tenant that asks: pg_read_all_data " +
        "reads every tenant's tables.",
    },
  )),
  allowedRoleSettings: optional(arr(
    str({ minLength: 1, maxLength: 63, pattern: SETTING_NAME_PATTERN }),
    {
      maxItems: 32,
      listType: "set",
      description: "Session settings DatabaseUsers on this server may set (spec.settings, " +
        "databases[].settings) besides the built-in list, e.g. geqo, extra_float_digits, " +
        "myapp.tenant. role, session_authorization, search_path, " +
        "idle_in_transaction_session_timeout and log_* are never allowed. A setting the server " +
        "only lets a superuser set is refused by PostgreSQL when the user is reconciled.",
      rules: [{
        rule: `self.all(n, !(n in [${
          NEVER_ROLE_SETTINGS.map((k) => `'${k}'`).join(", ")
        }]) && !n.startsWith('${NEVER_ROLE_SETTING_PREFIX}'))`,
        message: `allowedRoleSettings must not list ${
          NEVER_ROLE_SETTINGS.join(", ")
        } or ${NEVER_ROLE_SETTING_PREFIX}* settings`,
      }],
    },
  )),
}, {
  description: "Where the PostgreSQL server is and how to log in as its admin role.",
  rules: [{
    rule: "[has(self.credentialsSecretRef), has(self.credentialsFromEnv), " +
      "has(self.authentication)].filter(x, x).size() == 1",
    message:
      "exactly one of credentialsSecretRef, credentialsFromEnv and authentication must be set",
  }],
});

/** The phases a DBCluster reports. */
export const DBCLUSTER_PHASES = ["Pending", "Connected", "Failed"] as const;

const isolationStatus = obj({
  mode: optional(enumOf(ISOLATION_MODES, { description: "The spec.isolation last applied." })),
  databases: optional(arr(
    obj({
      name: str({ maxLength: 63, description: "Name of the database." }),
      publicConnect: bool({
        description: "Whether PUBLIC, and so every role dbtether creates, may connect to it.",
      }),
      restrictedAt: timestamp(
        "When dbtether replaced PUBLIC's CONNECT here; absent when it found it so.",
      ),
      grantedRoles: optional(int({
        minimum: 0,
        description: "How many login roles got CONNECT of their own when it was restricted.",
      })),
      reason: optional(str({
        maxLength: 64,
        description: "Why PUBLIC may still connect (IsolationKept, OwnerNotActable, ...).",
      })),
    }),
    {
      maxItems: 500,
      description: "The databases dbtether does not manage, as last checked (at most 500).",
    },
  )),
});

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
  isolation: optional(isolationStatus),
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
