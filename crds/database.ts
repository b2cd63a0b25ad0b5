/**
 * Database: a database inside a DBCluster's server, owned by a dedicated NOLOGIN owner role.
 */
import { arr, bool, enumOf, type Infer, int, obj, optional, str, withDefault } from "./schema.ts";
import {
  ageColumn,
  conditionsField,
  defineKind,
  GROUP,
  identifierRules,
  type KubeObject,
  managementPolicyField,
  messageField,
  namespaceName,
  objectName,
  observedGenerationField,
  pgIdentifier,
  VERSION,
} from "./kind.ts";
import { MAX_IDENTIFIER_BYTES } from "../controllers/postgres/limits.ts";

/** What happens to the PostgreSQL database when the Database resource is deleted. */
export const DATABASE_DELETION_POLICIES = ["Retain", "Delete"] as const;
/** What dbtether does with the `public` schema of the database. */
export const PUBLIC_SCHEMA_MODES = ["keep", "lockdown", "drop"] as const;
/** The roles of the database that may own a schema of spec.schemas. */
export const SCHEMA_OWNER_LEVELS = ["owner", "admin", "readwrite", "readonly"] as const;

/** The templates a Database may be created from: never another tenant's database. */
export const DATABASE_TEMPLATES = ["template0", "template1"] as const;
/** Locale providers (icu from PostgreSQL 15, builtin from 17). */
export const LOCALE_PROVIDERS = ["libc", "icu", "builtin"] as const;
/** The creation options, each immutable once the resource exists (CEL, spec level). */
export const CREATION_OPTIONS = [
  "template",
  "encoding",
  "locale",
  "lcCollate",
  "lcCtype",
  "localeProvider",
  "icuLocale",
  "tablespace",
] as const;

/** A locale or encoding name: letters, digits and the few marks locale names use. */
const localeName = (description: string) =>
  optional(str({
    minLength: 1,
    maxLength: 64,
    pattern: "^[A-Za-z0-9][A-Za-z0-9_.@=-]*$",
    description: `${description} Used only when dbtether creates the database; immutable.`,
  }));

/** A schema name: a PostgreSQL identifier that is not a system schema's. */
const schemaName = str({
  minLength: 1,
  maxLength: MAX_IDENTIFIER_BYTES,
  pattern: "^[^\\x00]+$",
  description: "Name of the schema, kept exactly as written (quoted in SQL).",
  rules: [
    {
      rule: `size(bytes(self)) <= ${MAX_IDENTIFIER_BYTES}`,
      message: `a schema name must be at most ${MAX_IDENTIFIER_BYTES} bytes in UTF-8: ` +
        "PostgreSQL truncates longer identifiers",
    },
    {
      rule: "!self.lowerAscii().startsWith('pg_')",
      message: "a schema name must not start with pg_: PostgreSQL reserves it",
    },
    {
      rule: "!(self in ['public', 'information_schema'])",
      message: "public and information_schema are not declared here (see spec.publicSchema)",
    },
  ],
});

const schemaEntry = obj({
  name: schemaName,
  owner: optional(obj({
    level: optional(enumOf(SCHEMA_OWNER_LEVELS, {
      description: "The role of this database that owns the schema: owner (<db>_owner, the " +
        "default), admin, readwrite or readonly (<db>_<level>). Members of the owning role " +
        "may create objects in it.",
    })),
    databaseUser: optional(objectName({
      description: "A DatabaseUser of this namespace whose role owns the schema. It must list " +
        "this Database in its databases and must not rotate Alternating; until its role " +
        "exists the schema is not created (condition SchemaOwnersReady). Deleting the user " +
        "leaves the schema owned by <db>_owner.",
    })),
  }, {
    description: "Who owns the schema (level or databaseUser); default the database's owner " +
      "role.",
    rules: [{
      rule: "has(self.level) != has(self.databaseUser)",
      message: "owner takes exactly one of level or databaseUser",
    }],
  })),
  deletionPolicy: withDefault(
    enumOf(DATABASE_DELETION_POLICIES, {
      description: "When the entry is removed from spec.schemas: Retain releases the claim " +
        "and keeps the schema; Delete drops it (RESTRICT: only when it is empty).",
    }),
    "Retain" as typeof DATABASE_DELETION_POLICIES[number],
  ),
}, { description: "A schema dbtether creates (or adopts) in the database." });

/** A name PostgreSQL keeps exactly as written (quoted), without NUL, at most 63 bytes. */
const plainIdentifier = (description: string) =>
  str({
    minLength: 1,
    maxLength: MAX_IDENTIFIER_BYTES,
    pattern: "^[^\\x00]+$",
    description,
    rules: [{
      rule: `size(bytes(self)) <= ${MAX_IDENTIFIER_BYTES}`,
      message: `a name must be at most ${MAX_IDENTIFIER_BYTES} bytes in UTF-8`,
    }],
  });

const extensionEntry = obj({
  name: plainIdentifier("Name of the extension, e.g. hstore."),
  version: optional(str({
    minLength: 1,
    maxLength: 64,
    pattern: "^[A-Za-z0-9][A-Za-z0-9_.+-]*$",
    description: "The version to install (CREATE EXTENSION ... VERSION) and to keep: when it " +
      "changes, ALTER EXTENSION ... UPDATE TO it. Unset: the server's default version at " +
      "creation, and never updated by dbtether.",
  })),
  schema: optional(plainIdentifier(
    "The schema the extension's objects are created in (CREATE EXTENSION ... SCHEMA): public " +
      "or one of spec.schemas. Used at creation only; an extension found in another schema is " +
      "reported in the OptionsMatch condition, not moved.",
  )),
}, { description: "An extension with its version or schema." });

const spec = obj({
  clusterRef: obj({
    name: objectName({ description: "Name of the DBCluster." }),
  }, {
    description: "The DBCluster (cluster-scoped) whose server holds the database.",
    rules: [{ rule: "self == oldSelf", message: "clusterRef is immutable" }],
  }),
  databaseName: optional(pgIdentifier("databaseName", {
    description: "Name of the database in PostgreSQL, kept exactly as written. Default: " +
      "metadata.name with '-' replaced by '_' (status.databaseName shows the name in use). " +
      "Immutable.",
    rules: [{ rule: "self == oldSelf", message: "databaseName is immutable" }],
  })),
  extensions: optional(arr(
    str({ minLength: 1, maxLength: 63, pattern: "^[^\\x00]+$" }),
    {
      maxItems: 64,
      listType: "set",
      description: "Extensions created in the database if missing (CREATE EXTENSION IF NOT " +
        "EXISTS), e.g. uuid-ossp, pg_trgm. Removing one from the list does not drop it.",
    },
  )),
  extensionOptions: optional(arr(extensionEntry, {
    maxItems: 64,
    description: "Extensions with a version or a schema, created if missing like those of " +
      "extensions (an extension may be in both lists; these options then apply to it).",
    rules: [{
      rule: "self.all(a, self.exists_one(b, b.name == a.name))",
      message: "extensionOptions must not list the same extension twice",
    }],
  })),
  managementPolicy: managementPolicyField("database, its roles and schemas"),
  deletionPolicy: withDefault(
    enumOf(DATABASE_DELETION_POLICIES, {
      description: "On deletion of this resource: Retain releases the claim and keeps the " +
        "database and its data; Delete terminates its sessions and drops it.",
    }),
    "Retain" as typeof DATABASE_DELETION_POLICIES[number],
  ),
  revokePublicConnect: withDefault(
    bool({
      description: "Revoke CONNECT from PUBLIC, so that only users granted this database " +
        "can connect to it.",
    }),
    true,
  ),
  schemas: optional(arr(schemaEntry, {
    maxItems: 64,
    description: "Schemas created in the database (CREATE SCHEMA IF NOT EXISTS) and owned by " +
      "its owner role unless owner says otherwise. An existing schema that dbtether did not " +
      "create is taken over only with the adoption annotation and the DBCluster's consent.",
    rules: [{
      rule: "self.all(a, self.exists_one(b, b.name == a.name))",
      message: "schemas must not list the same schema twice",
    }],
  })),
  publicSchema: optional(enumOf(PUBLIC_SCHEMA_MODES, {
    description: "keep (default): leave the public schema (CREATE revoked from PUBLIC, as " +
      "always); lockdown: also revoke USAGE from PUBLIC, so only this database's roles use " +
      "it; drop: DROP SCHEMA public RESTRICT (refused by the server while it holds objects).",
  })),
  connectionLimit: optional(int({
    minimum: -1,
    description: "Maximum concurrent connections to the database (ALTER DATABASE ... " +
      "CONNECTION LIMIT); -1 means no limit. Unset: left as it is (no limit for a new database).",
  })),
  template: optional(enumOf(DATABASE_TEMPLATES, {
    description: "The template the database is created from. Default template1, or template0 " +
      "when encoding or a locale option is set. Used only when dbtether creates the database; " +
      "immutable.",
  })),
  encoding: localeName("Character set encoding, e.g. UTF8."),
  locale: localeName(
    "Sets both lcCollate and lcCtype (and the provider's locale), e.g. C or " +
      "en_US.UTF-8.",
  ),
  lcCollate: localeName("Collation order (LC_COLLATE)."),
  lcCtype: localeName("Character classification (LC_CTYPE)."),
  localeProvider: optional(enumOf(LOCALE_PROVIDERS, {
    description: "libc, icu (PostgreSQL 15+) or builtin (17+). Used only when dbtether creates " +
      "the database; immutable.",
  })),
  icuLocale: localeName("The ICU locale, e.g. und or en-US (localeProvider icu)."),
  tablespace: optional(plainIdentifier(
    "The tablespace the database is created in (CREATE DATABASE ... TABLESPACE). Only " +
      "pg_default or a tablespace the DBCluster lists in spec.allowedTablespaces. Used only " +
      "when dbtether creates the database; immutable (moving it needs every other session " +
      "out of the database and copies all its files).",
  )),
  isTemplate: optional(bool({
    description: "Mark the database as a template (ALTER DATABASE ... IS_TEMPLATE), so that " +
      "any role with CREATEDB may clone it. Only where the DBCluster sets " +
      "spec.allowTemplateDatabases. Kept in line; unset leaves it as it is.",
  })),
  allowConnections: optional(bool({
    description: "Whether anyone may connect to the database (ALTER DATABASE ... " +
      "ALLOW_CONNECTIONS). false also stops dbtether converging what is inside it " +
      "(schemas, grants, extensions) until it is true again. Kept in line; unset leaves it.",
  })),
  allowedUserNamespaces: optional(arr(namespaceName(), {
    maxItems: 256,
    listType: "set",
    description: "Other namespaces whose DatabaseUsers may reference this Database. Its own " +
      "namespace is always allowed.",
  })),
}, {
  description: "The database to create or claim, and what to do with it on deletion.",
  rules: [
    {
      rule: "!(has(self.publicSchema) && self.publicSchema == 'drop' && has(self.extensions) && " +
        "size(self.extensions) > 0)",
      message: "publicSchema drop cannot be used with extensions: they are created in public",
    },
    {
      rule: "!(has(self.publicSchema) && self.publicSchema == 'drop' && " +
        "has(self.extensionOptions) && self.extensionOptions.exists(e, !has(e.schema) || " +
        "e.schema == 'public'))",
      message: "publicSchema drop cannot be used with extensions created in public",
    },
    {
      rule: "!has(self.extensionOptions) || self.extensionOptions.all(e, !has(e.schema) || " +
        "e.schema == 'public' || (has(self.schemas) && self.schemas.exists(s, s.name == " +
        "e.schema)))",
      message: "an extension's schema must be public or one of spec.schemas",
    },
    ...CREATION_OPTIONS.map((f) => ({
      rule: `has(self.${f}) == has(oldSelf.${f}) && (!has(self.${f}) || self.${f} == oldSelf.${f})`,
      message: `${f} is immutable: it applies only when the database is created`,
    })),
    {
      rule: "!has(self.icuLocale) || (has(self.localeProvider) && self.localeProvider == 'icu')",
      message: "icuLocale needs localeProvider icu",
    },
    {
      rule: "!has(self.connectionLimit) || self.connectionLimit != 0",
      message: "connectionLimit must be -1 (no limit) or at least 1: 0 would stop every login",
    },
  ],
});

/** The phases a Database reports. */
export const DATABASE_PHASES = ["Pending", "Ready", "Failed", "Deleting"] as const;

const status = obj({
  phase: optional(enumOf(DATABASE_PHASES, { description: "Summary of the conditions." })),
  message: messageField,
  databaseName: optional(str({
    maxLength: 63,
    description: "The database name in PostgreSQL (spec.databaseName or its default); " +
      "set from the first reconcile on.",
  })),
  clusterName: optional(str({ maxLength: 253, description: "The DBCluster in use." })),
  ownerRole: optional(str({
    maxLength: 63,
    description: "The NOLOGIN role that owns the database and the objects in it.",
  })),
  extensions: optional(arr(str({ maxLength: 63 }), {
    maxItems: 64,
    description: "Extensions present in the database among those requested.",
  })),
  observedGeneration: observedGenerationField,
  conditions: conditionsField,
});

/** The desired state of a Database. */
export type DatabaseSpec = Infer<typeof spec>;
/** The observed state of a Database. */
export type DatabaseStatus = Infer<typeof status>;
/** A Database object. */
export type Database = KubeObject<DatabaseSpec, DatabaseStatus>;

// The default name is metadata.name with '-' -> '_': only a rule on the whole object sees it.
const DEFAULT_NAME = "self.metadata.name.replace('-', '_')";

/** The Database kind: its CRD and its API descriptor. */
export const DatabaseKind = defineKind({
  group: GROUP,
  version: VERSION,
  kind: "Database",
  plural: "databases",
  singular: "database",
  categories: ["dbtether"],
  scope: "Namespaced",
  description: "Database is a PostgreSQL database in the server of a DBCluster.",
  spec,
  status: optional(status),
  rules: identifierRules(DEFAULT_NAME, "the default database name (metadata.name with '-' → '_')")
    .map((r) => ({
      rule: `has(self.spec.databaseName) || (${r.rule})`,
      message: `${r.message}; set spec.databaseName`,
    })),
  printerColumns: [
    { name: "Cluster", type: "string", jsonPath: ".spec.clusterRef.name" },
    { name: "Database", type: "string", jsonPath: ".status.databaseName" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    ageColumn,
  ],
});
