/**
 * DatabaseUser: a login role with privileges on one or more Databases, and a Secret holding
 * its credentials, rotated on a schedule or on demand.
 */
import { arr, enumOf, type Infer, int, obj, optional, record, str, withDefault } from "./schema.ts";
import {
  ageColumn,
  conditionsField,
  defineKind,
  duration,
  GROUP,
  identifierRules,
  type KubeObject,
  managementPolicyField,
  messageField,
  namespaceName,
  objectName,
  observedGenerationField,
  pgIdentifier,
  timestamp,
  VERSION,
} from "./kind.ts";
import { MAX_IDENTIFIER_BYTES } from "../controllers/postgres/limits.ts";
import {
  NEVER_ROLE_SETTING_PREFIX,
  NEVER_ROLE_SETTINGS,
  ROLE_SETTINGS,
  SETTING_NAME_PATTERN,
} from "../controllers/postgres/statements.ts";
import { TABLE_PRIVILEGES as PG_TABLE_PRIVILEGES } from "../controllers/postgres/statements.ts";

/** Privilege levels, each including the one before it. */
/** How the app logs in as a DatabaseUser (spec.authentication.type). */
export const USER_AUTHENTICATION_TYPES = ["password", "awsIam", "azureEntra", "gcpIam"] as const;
/** A DatabaseUser's login type. */
export type UserAuthenticationType = typeof USER_AUTHENTICATION_TYPES[number];

export const PRIVILEGE_LEVELS = ["readonly", "readwrite", "admin", "owner"] as const;
/** A privilege level of a user on a database. */
export type PrivilegeLevel = typeof PRIVILEGE_LEVELS[number];

/** Privilege levels on one schema. */
export const SCHEMA_PRIVILEGE_LEVELS = ["readonly", "readwrite", "admin"] as const;
/** A privilege level of a user on one schema. */
export type SchemaPrivilegeLevel = typeof SCHEMA_PRIVILEGE_LEVELS[number];

/** Table privileges `additionalGrants` may give. */
export const TABLE_PRIVILEGES = [...PG_TABLE_PRIVILEGES, "USAGE"] as const;

/** Key layouts of the credentials Secret (see docs/crds/databaseuser.md). */
export const SECRET_TEMPLATES = ["raw", "DB", "DATABASE", "POSTGRES", "dsn", "custom"] as const;
/** What to do when the credentials Secret exists but was not made by this DatabaseUser. */
export const SECRET_ON_CONFLICT = ["Fail", "Adopt", "Merge"] as const;
/** Rotation strategies. */
export const ROTATION_STRATEGIES = ["InPlace", "Alternating"] as const;
/** Suffix of the second login role of the Alternating strategy. */
export const ALTERNATE_ROLE_SUFFIX = "_b";

const privileges = (extra: string) =>
  enumOf(PRIVILEGE_LEVELS, {
    description: "readonly: CONNECT, USAGE on schemas, SELECT on tables and sequences, EXECUTE " +
      "on functions, now and in future; readwrite: also INSERT, UPDATE, DELETE and sequence USAGE; admin: also " +
      "CREATE in the schemas (new objects belong to the database's owner role); owner: admin " +
      `and owns the existing objects (one owner per database).${extra}`,
  });

/** RFC 3339 with a zone, or infinity. */
const VALID_UNTIL_PATTERN =
  "^(infinity|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$";

function settingsField(description: string) {
  return record(str({ minLength: 1, maxLength: 256, pattern: "^[^\\x00]+$" }), {
    description,
    maxProperties: 16,
    rules: [{
      rule: `self.all(k, size(k) <= 63 && k.matches('${SETTING_NAME_PATTERN}') && !(k in [${
        NEVER_ROLE_SETTINGS.map((k) => `'${k}'`).join(", ")
      }]) && !k.startsWith('${NEVER_ROLE_SETTING_PREFIX}'))`,
      message: `settings names are lowercase setting names; ${
        NEVER_ROLE_SETTINGS.join(", ")
      } and ${NEVER_ROLE_SETTING_PREFIX}* are never allowed. Besides ${
        ROLE_SETTINGS.join(", ")
      }, a name must be listed in the DBCluster's spec.allowedRoleSettings`,
    }],
  });
}

const databaseEntry = (description: string) =>
  obj({
    name: objectName({ description: "Name of the Database resource." }),
    namespace: optional(namespaceName({
      description: "Namespace of the Database; default: this resource's namespace. Another " +
        "namespace must be listed in that Database's spec.allowedUserNamespaces.",
    })),
    privileges: optional(privileges(
      " Default: spec.privileges, or none (the schemas' privileges only) when schemas is set.",
    )),
    schemas: optional(arr(
      obj({
        name: str({
          minLength: 1,
          maxLength: MAX_IDENTIFIER_BYTES,
          pattern: "^[^\\x00]+$",
          description: "A schema declared in the Database's spec.schemas.",
        }),
        privileges: enumOf(SCHEMA_PRIVILEGE_LEVELS, {
          description: "readonly: USAGE on the schema, SELECT on its tables and sequences, " +
            "EXECUTE on its functions, now and in future; readwrite: also INSERT, UPDATE, DELETE and sequence USAGE; admin: " +
            "also CREATE in it (what the user creates there is usable by the other levels).",
        }),
      }),
      {
        maxItems: 64,
        description: "Privileges per schema, through the schema's group roles, in addition to " +
          "privileges (or instead: an entry with schemas and without privileges has access to " +
          "these schemas only). The user's search_path in this database becomes these schemas.",
        rules: [{
          rule: "self.all(a, self.exists_one(b, b.name == a.name))",
          message: "schemas must not list the same schema twice",
        }],
      },
    )),
    settings: optional(settingsField(
      "Session settings of the role in this database only (ALTER ROLE ... IN DATABASE ... " +
        "SET), from the same list as spec.settings and kept the same way: once present, an " +
        "allowed setting of the role in this database not listed here is reset.",
    )),
  }, { description });

const secretKey = str({ minLength: 1, maxLength: 253, pattern: "^[-._a-zA-Z0-9]+$" });

const spec = obj({
  databaseRef: optional(obj({
    name: objectName({ description: "Name of the Database resource." }),
    namespace: optional(namespaceName({
      description: "Namespace of the Database; default: this resource's namespace. Another " +
        "namespace must be listed in that Database's spec.allowedUserNamespaces.",
    })),
  }, {
    description: "The Database this user is granted spec.privileges on. Exactly one of " +
      "databaseRef, database and databases is set.",
  })),
  database: optional(databaseEntry(
    "The Database this user is granted privileges on (dbtether v0.9 form). Exactly one of " +
      "databaseRef, database and databases is set.",
  )),
  databases: optional(arr(
    databaseEntry("A Database and the privileges on it."),
    {
      minItems: 1,
      maxItems: 32,
      description: "Several Databases, each with its own privileges; one role for all. " +
        "Exactly one of databaseRef, database and databases is set.",
      rules: [{
        // Comparing the values of an optional string (namespace) inside two nested loops
        // exceeds the CEL cost budget on Kubernetes 1.36, whatever its maxLength: only entries
        // in this namespace are checked here; the controller reports cross-namespace repeats.
        rule: "self.all(a, has(a.namespace) || " +
          "self.exists_one(b, !has(b.namespace) && b.name == a.name))",
        message: "databases must not list the same Database of this namespace twice",
      }],
    },
  )),
  privileges: withDefault(
    privileges(" With database or databases, the default for entries that set none."),
    "readonly",
  ),
  username: optional(pgIdentifier("username", {
    description: "Role name in PostgreSQL, kept exactly as written. Default: metadata.name " +
      "(hyphens kept). Immutable.",
    rules: [{ rule: "self == oldSelf", message: "username is immutable" }],
  })),
  password: withDefault(
    obj({
      length: withDefault(
        int({ minimum: 12, maximum: 64, description: "Length of generated passwords." }),
        16,
      ),
    }, { description: "How passwords are generated." }),
    {},
  ),
  rotation: optional(obj({
    days: optional(int({
      minimum: 1,
      maximum: 365,
      description: "Rotate the password every this many days.",
    })),
    interval: optional(duration({
      description: "Rotate the password at this interval (Go duration, e.g. 720h); " +
        "instead of days.",
    })),
    strategy: withDefault(
      enumOf(ROTATION_STRATEGIES, {
        description: "InPlace: set a new password on the role, verify it, then update the " +
          "Secret. Alternating: two login roles <username> and <username>_b; each rotation " +
          "changes the one not in the Secret, so the previous credentials stay valid until " +
          "the next rotation.",
      }),
      "InPlace",
    ),
  }, {
    description: "Automatic password rotation. The annotation dbtether.io/rotate set to a " +
      "new value also rotates once.",
    rules: [{
      rule: "!(has(self.days) && has(self.interval))",
      message: "set rotation.days or rotation.interval, not both",
    }],
  })),
  connectionLimit: withDefault(
    int({
      minimum: -1,
      description: "Maximum concurrent connections of the role; -1 means no limit.",
      rules: [{
        rule: "self != 0",
        message: "connectionLimit must be -1 (no limit) or at least 1: " +
          "0 would stop the user from logging in",
      }],
    }),
    -1,
  ),
  idleInTransactionTimeout: optional(duration({
    description: "idle_in_transaction_session_timeout for the role (Go duration, e.g. 5m).",
  })),
  settings: optional(settingsField(
    "Session settings of the role (ALTER ROLE ... SET), from the allowed list: " +
      `${ROLE_SETTINGS.join(", ")}, and those the DBCluster's spec.allowedRoleSettings adds ` +
      "(any other name: SettingNotAllowed). The values are given to PostgreSQL as text, which checks " +
      "them. Once settings is present, an allowed setting set on the role by hand and not " +
      "listed here is reset ({} resets them all); without it, the role's settings are left " +
      "as they are.",
  )),
  validUntil: optional(obj({
    at: optional(str({
      maxLength: 40,
      pattern: VALID_UNTIL_PATTERN,
      description: "A fixed expiry (RFC 3339, e.g. 2027-06-30T00:00:00Z) of the login " +
        "role(s), or infinity for none.",
    })),
    afterPasswordChange: optional(duration({
      description: "Each login role expires this long after its password was last set, and " +
        "every rotation moves it on: with rotation, set it longer than the rotation period " +
        "(the period plus a grace, e.g. 30 days rotation and 744h), so the password in the " +
        "Secret is rotated before it expires and an old one that leaked expires on its own.",
    })),
  }, {
    description: "The role's VALID UNTIL: after it, its password no longer logs in (sessions " +
      "already open stay). Unset: the role's expiry is left as it is.",
    rules: [{
      rule: "has(self.at) != has(self.afterPasswordChange)",
      message: "set exactly one of validUntil.at and validUntil.afterPasswordChange",
    }],
  })),
  memberOf: optional(arr(
    str({ minLength: 1, maxLength: MAX_IDENTIFIER_BYTES, pattern: "^[^\\x00]+$" }),
    {
      maxItems: 16,
      listType: "set",
      description: "Roles outside dbtether the role is a member of, e.g. pg_read_all_data, " +
        "pg_monitor, pg_signal_backend: only those the DBCluster lists in " +
        "spec.grantableRoles, and that its admin role holds WITH ADMIN OPTION. Once memberOf " +
        "is present, a membership in another such role (granted by hand, or removed from the " +
        "list) is revoked ([] revokes them all); without it, they are left as they are.",
    },
  )),
  authentication: optional(obj({
    type: withDefault(
      enumOf(USER_AUTHENTICATION_TYPES, {
        description: "password: a generated password in the Secret (rotation applies). " +
          "awsIam: the role has no password and is granted rds_iam; the app logs in with an " +
          "RDS IAM token. azureEntra: the role is created by pgaadauth_create_principal " +
          "(the name is the Entra principal's); the app logs in with an Entra token. gcpIam: " +
          "Cloud SQL creates IAM users through its admin API; dbtether waits for the role and " +
          "manages only its grants, needs adoption consent (dbtether.io/adopt and the " +
          "DBCluster's), and never drops it: deleting the user revokes the grants, memberOf and " +
          "settings dbtether gave it (deletionPolicy Delete) or keeps them (Retain). With any " +
          "IAM type the Secret has no password, rotation does nothing, and only the role " +
          "spec.username is used.",
      }),
      "password" as UserAuthenticationType,
    ),
    region: optional(str({
      pattern: "^[a-z]{2}(-[a-z]+)+-[0-9]+$",
      maxLength: 32,
      description: "awsIam: the AWS region the app signs its token for, written to the " +
        "Secret; default the DBCluster's spec.authentication.region.",
    })),
  }, {
    description: "How the app logs in as this user.",
    rules: [{
      rule: "self.type == 'awsIam' || !has(self.region)",
      message: "authentication.region applies to awsIam only",
    }],
  })),
  managementPolicy: managementPolicyField("login role(s) and grants"),
  deletionPolicy: withDefault(
    enumOf(["Delete", "Retain"] as const, {
      description: "On deletion: Delete reassigns the role's objects to the database's owner " +
        "role and drops the role(s); Retain keeps the role but removes its LOGIN. A gcpIam " +
        "role (Cloud SQL's) is kept either way: Delete revokes what dbtether granted it and " +
        "clears its marker, Retain leaves it as it is, LOGIN and grants included. The " +
        "Secret is deleted either way.",
    }),
    "Delete",
  ),
  additionalGrants: optional(arr(
    obj({
      tables: arr(str({ minLength: 1, maxLength: 127, pattern: "^[^\\x00]+$" }), {
        minItems: 1,
        maxItems: 256,
        description: "Tables, as name or schema.name.",
      }),
      privileges: arr(enumOf(TABLE_PRIVILEGES), {
        minItems: 1,
        maxItems: 8,
        listType: "set",
        description: "Privileges to grant on those tables.",
      }),
    }),
    { maxItems: 64, description: "Table privileges beyond spec.privileges." },
  )),
  secret: withDefault(
    obj({
      name: optional(objectName({
        description: "Name of the Secret; default <metadata.name>-credentials.",
      })),
      template: withDefault(
        enumOf(SECRET_TEMPLATES, {
          description: "Key layout: raw (host, port, database, username, password, uri), DB " +
            "(DB_HOST, ...), DATABASE (DATABASE_HOST, ...), POSTGRES (POSTGRES_HOST, ...), " +
            "dsn (one key dsn) or custom (names from keys).",
        }),
        "raw",
      ),
      keys: optional(obj({
        host: optional(secretKey),
        port: optional(secretKey),
        database: optional(secretKey),
        username: optional(secretKey),
        password: optional(secretKey),
      }, { description: "Key names for template custom; missing ones as raw." })),
      onConflict: withDefault(
        enumOf(SECRET_ON_CONFLICT, {
          description: "When a Secret of that name exists but is not this user's: Fail, " +
            "Adopt (take it over, replace its data) or Merge (take it over, keep its other keys).",
        }),
        "Fail",
      ),
      namespace: optional(namespaceName({
        description: "Also deliver a copy of the Secret (of each, with secretGeneration " +
          "perDatabase) to this namespace, under the same name; only where the DBCluster's " +
          "spec.secretDelivery allows this namespace to deliver there. The copy is labelled " +
          "with its source and deleted when the permission or this field goes away, or the " +
          "user is deleted; an existing Secret there is never replaced. Unset or this " +
          "namespace: no copy.",
      })),
    }, {
      description: "The Secret holding the credentials.",
      rules: [{
        rule: "!has(self.keys) || self.template == 'custom'",
        message: "secret.keys is only used with template custom",
      }],
    }),
    {},
  ),
  secretGeneration: withDefault(
    enumOf(["primary", "perDatabase"] as const, {
      description: "primary: one Secret; perDatabase: one Secret per database, named " +
        "<metadata.name>-<Database name>-credentials.",
    }),
    "primary",
  ),
}, {
  description: "The role, the databases it may use, and where its credentials go.",
  rules: [
    {
      rule: "(has(self.databaseRef) ? 1 : 0) + (has(self.database) ? 1 : 0) + " +
        "(has(self.databases) ? 1 : 0) == 1",
      message: "exactly one of databaseRef, database and databases must be set",
    },
    {
      rule: "self.secretGeneration != 'perDatabase' || !has(self.secret) || " +
        "(!has(self.secret.name) && (!has(self.secret.onConflict) || " +
        "self.secret.onConflict == 'Fail'))",
      message: "secretGeneration perDatabase names one Secret per database: " +
        "secret.name must be unset and secret.onConflict must be Fail",
    },
    {
      rule: "!has(self.rotation) || !has(self.rotation.strategy) || " +
        "self.rotation.strategy != 'Alternating' || !has(self.username) || " +
        `size(bytes(self.username)) <= ${MAX_IDENTIFIER_BYTES - ALTERNATE_ROLE_SUFFIX.length}`,
      message: `with rotation strategy Alternating, username must be at most ` +
        `${MAX_IDENTIFIER_BYTES - ALTERNATE_ROLE_SUFFIX.length} bytes: ` +
        `the second role is <username>${ALTERNATE_ROLE_SUFFIX}`,
    },
    {
      rule: "!has(self.validUntil) || !has(self.validUntil.afterPasswordChange) || " +
        "!has(self.authentication) || self.authentication.type == 'password'",
      message: "validUntil.afterPasswordChange follows the password, and an IAM user " +
        "(awsIam, azureEntra, gcpIam) has none: use validUntil.at",
    },
  ],
});

/** The phases a DatabaseUser reports. */
export const DATABASE_USER_PHASES = ["Pending", "Ready", "Failed", "Deleting"] as const;

const status = obj({
  phase: optional(enumOf(DATABASE_USER_PHASES, { description: "Summary of the conditions." })),
  message: messageField,
  clusterName: optional(str({ maxLength: 253, description: "The DBCluster of the databases." })),
  username: optional(str({ maxLength: 63, description: "The role name in use." })),
  databases: optional(arr(str({ maxLength: 317 }), {
    maxItems: 32,
    description: "The Database resources granted, <namespace>/<name> for another namespace.",
  })),
  databasesSummary: optional(str({
    maxLength: 400,
    description: "The first Database, with (+N) when there are more: the DATABASE column.",
  })),
  privilegesSummary: optional(str({
    maxLength: 64,
    description: "The distinct privilege levels granted, comma-separated: the PRIVILEGES column.",
  })),
  secretName: optional(str({ maxLength: 253, description: "The (primary) credentials Secret." })),
  secretNames: optional(arr(str({ maxLength: 253 }), {
    maxItems: 32,
    description: "With secretGeneration perDatabase: every Secret written.",
  })),
  activeRole: optional(str({
    maxLength: 63,
    description: "Alternating rotation: the login role whose password is in the Secret " +
      "(<username> or <username>_b).",
  })),
  passwordUpdatedAt: timestamp("When the Secret last received a new password."),
  nextRotation: timestamp("When the next scheduled rotation is due."),
  lastRotateRequest: optional(str({
    maxLength: 253,
    description: "The value of the dbtether.io/rotate annotation last acted upon.",
  })),
  observedGeneration: observedGenerationField,
  conditions: conditionsField,
});

/** The desired state of a DatabaseUser. */
export type DatabaseUserSpec = Infer<typeof spec>;
/** The observed state of a DatabaseUser. */
export type DatabaseUserStatus = Infer<typeof status>;
/** A DatabaseUser object. */
export type DatabaseUser = KubeObject<DatabaseUserSpec, DatabaseUserStatus>;

/** The DatabaseUser kind: its CRD and its API descriptor. */
export const DatabaseUserKind = defineKind({
  group: GROUP,
  version: VERSION,
  kind: "DatabaseUser",
  plural: "databaseusers",
  singular: "databaseuser",
  categories: ["dbtether"],
  scope: "Namespaced",
  description: "DatabaseUser is a PostgreSQL login role with privileges on Databases and a " +
    "Secret with its credentials.",
  spec,
  status: optional(status),
  rules: [
    ...identifierRules("self.metadata.name", "the default username (metadata.name)")
      .map((r) => ({
        rule: `has(self.spec.username) || (${r.rule})`,
        message: `${r.message}; set spec.username`,
      })),
    {
      rule: "has(self.spec.username) || !has(self.spec.rotation) || " +
        "!has(self.spec.rotation.strategy) || self.spec.rotation.strategy != 'Alternating' || " +
        `size(self.metadata.name) <= ${MAX_IDENTIFIER_BYTES - ALTERNATE_ROLE_SUFFIX.length}`,
      message: `with rotation strategy Alternating, the default username (metadata.name) must ` +
        `be at most ${MAX_IDENTIFIER_BYTES - ALTERNATE_ROLE_SUFFIX.length} bytes: the second ` +
        `role is <username>${ALTERNATE_ROLE_SUFFIX}; set spec.username`,
    },
  ],
  printerColumns: [
    { name: "Database", type: "string", jsonPath: ".status.databasesSummary" },
    { name: "Username", type: "string", jsonPath: ".status.username" },
    { name: "Privileges", type: "string", jsonPath: ".status.privilegesSummary" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    ageColumn,
  ],
});
