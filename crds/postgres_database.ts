/**
 * PostgresDatabase: pg-db-operator's kind (experimental.bujarmurati.com/v1), kept so that its
 * users' manifests work unchanged: one database and one role of the same name, and a Secret.
 */
import { enumOf, type Infer, obj, optional, str } from "./schema.ts";
import {
  ageColumn,
  conditionsField,
  defineKind,
  type KubeObject,
  messageField,
  objectName,
  observedGenerationField,
  pgIdentifier,
  timestamp,
} from "./kind.ts";

/** pg-db-operator's API group. */
export const PG_DB_OPERATOR_GROUP = "experimental.bujarmurati.com";
/** pg-db-operator's API version. */
export const PG_DB_OPERATOR_VERSION = "v1";

const postfix = (description: string) =>
  optional(str({ maxLength: 253, pattern: "^[^\\x00]*$", description }));

const spec = obj({
  name: pgIdentifier("name", {
    description: "Shared name of the database and the role to create, kept exactly as " +
      "written. Immutable.",
    rules: [{ rule: "self == oldSelf", message: "name is immutable" }],
  }),
  targetSecret: obj({
    name: objectName({ description: "Name of the Secret to create in this namespace." }),
    userNamePostfix: postfix(
      "Appended to the role name in PGUSER, e.g. @myserver for servers that expect " +
        "user@server at connection time.",
    ),
    userNamePostFix: postfix(
      "Deprecated spelling of userNamePostfix from pg-db-operator's README; accepted for " +
        "compatibility.",
    ),
  }, {
    description: "The Secret with PGDATABASE, PGUSER (name + postfix), PGPASSWORD, PGHOST and " +
      "PGPORT.",
    rules: [{
      rule: "!(has(self.userNamePostfix) && has(self.userNamePostFix))",
      message: "set userNamePostfix or its deprecated spelling userNamePostFix, not both",
    }],
  }),
}, { description: "The database, role and Secret to create." });

/** The phases a PostgresDatabase reports. */
export const POSTGRES_DATABASE_PHASES = ["Pending", "Ready", "Failed"] as const;

const status = obj({
  phase: optional(enumOf(POSTGRES_DATABASE_PHASES, { description: "Summary of the conditions." })),
  message: messageField,
  secretName: optional(str({ maxLength: 253, description: "The Secret written." })),
  passwordUpdatedAt: timestamp("When the Secret last received a new password."),
  observedGeneration: observedGenerationField,
  conditions: conditionsField,
});

/** The desired state of a PostgresDatabase. */
export type PostgresDatabaseSpec = Infer<typeof spec>;
/** The observed state of a PostgresDatabase. */
export type PostgresDatabaseStatus = Infer<typeof status>;
/** A PostgresDatabase object. */
export type PostgresDatabase = KubeObject<PostgresDatabaseSpec, PostgresDatabaseStatus>;

/** The PostgresDatabase kind: its CRD and its API descriptor. */
export const PostgresDatabaseKind = defineKind({
  group: PG_DB_OPERATOR_GROUP,
  version: PG_DB_OPERATOR_VERSION,
  kind: "PostgresDatabase",
  plural: "postgresdatabases",
  singular: "postgresdatabase",
  shortNames: ["pgdb"],
  categories: ["dbtether"],
  scope: "Namespaced",
  description: "PostgresDatabase (from pg-db-operator) is a database and a role of the same " +
    "name with a Secret holding the role's credentials. Deleting it deletes only the Secret.",
  spec,
  status: optional(status),
  printerColumns: [
    { name: "Database", type: "string", jsonPath: ".spec.name" },
    { name: "Secret", type: "string", jsonPath: ".spec.targetSecret.name" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    ageColumn,
  ],
});
