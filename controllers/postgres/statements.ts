/**
 * Statement builders: the only functions that assemble SQL text. They take identifiers and
 * literals only as the branded types of quote.ts, and privileges and settings only from fixed
 * unions, so nothing a user wrote reaches the server unquoted. Utility statements (CREATE/ALTER
 * ROLE, GRANT, COMMENT, ...) take no bind parameters in PostgreSQL, hence the literals.
 */
import type { Ident, Literal } from "./quote.ts";

/** One statement and the database it must run in (undefined: the maintenance database). */
export interface Statement {
  sql: string;
  database?: string;
  /** Statements that must commit together with `sql`: all run in one transaction. */
  together?: string[];
}

/** The privileges GRANT … ON TABLE knows. */
export const TABLE_PRIVILEGES = [
  "SELECT",
  "INSERT",
  "UPDATE",
  "DELETE",
  "TRUNCATE",
  "REFERENCES",
  "TRIGGER",
] as const;
export type TablePrivilege = typeof TABLE_PRIVILEGES[number];
export type SequencePrivilege = "SELECT" | "USAGE" | "UPDATE";
export type SchemaPrivilege = "USAGE" | "CREATE";
/** The one privilege GRANT … ON FUNCTION knows (procedures included). */
export type FunctionPrivilege = "EXECUTE";
export type DatabasePrivilege = "CONNECT" | "TEMPORARY" | "CREATE";
/** Object classes of ALTER DEFAULT PRIVILEGES. */
export type DefaultObjects = "TABLES" | "SEQUENCES" | "FUNCTIONS" | "SCHEMAS";
/** What ALTER DEFAULT PRIVILEGES may give on one of {@link DefaultObjects}. */
export type DefaultPrivilege =
  | TablePrivilege
  | SequencePrivilege
  | SchemaPrivilege
  | FunctionPrivilege;
/**
 * Session settings a tenant may give its role (`DatabaseUser.spec.settings`): settings of the
 * "user" context, which a non-superuser admin may set on a role it manages, and none that
 * changes who the session is or what it may do (role, session_authorization) or what the
 * server logs. idle_in_transaction_session_timeout has its own field.
 */
export const ROLE_SETTINGS = [
  "statement_timeout",
  "lock_timeout",
  "idle_session_timeout",
  "work_mem",
  "maintenance_work_mem",
  "temp_buffers",
  "default_transaction_isolation",
  "default_transaction_read_only",
  "timezone",
  "datestyle",
  "intervalstyle",
  "client_min_messages",
  "jit",
] as const;
/**
 * What a setting name a DBCluster adds (`spec.allowedRoleSettings`) must look like: a
 * lowercase PostgreSQL parameter, or a custom `class.name` one. Quoted in SQL all the same.
 */
export const SETTING_NAME_PATTERN = "^[a-z][a-z0-9_]*([.][a-z][a-z0-9_]*)?$";
/**
 * Names no one may add: who the session is (role, session_authorization), the search_path
 * (managed from the user's schemas), idle_in_transaction_session_timeout (its own field), and
 * what the server logs (log_*).
 */
export const NEVER_ROLE_SETTINGS = [
  "role",
  "session_authorization",
  "search_path",
  "idle_in_transaction_session_timeout",
] as const;
/** The prefix of the logging parameters, never allowed either. */
export const NEVER_ROLE_SETTING_PREFIX = "log_";

/** Whether `name` may be allowed at all (by the built-in list or a DBCluster's). */
export function settingNameProblem(name: string): string | undefined {
  if (!new RegExp(SETTING_NAME_PATTERN).test(name)) {
    return "a setting name is lowercase letters, digits and _, optionally class.name";
  }
  if ((NEVER_ROLE_SETTINGS as readonly string[]).includes(name)) return "it is never allowed";
  if (name.startsWith(NEVER_ROLE_SETTING_PREFIX)) return "logging settings are never allowed";
  return undefined;
}

/** A setting's name in SQL: the built-in ones as written, any other quoted part by part. */
export function settingName(name: string): string {
  if ((ROLE_SETTINGS as readonly string[]).includes(name) || name === "role") return name;
  if (name === "idle_in_transaction_session_timeout" || name === "search_path") return name;
  return name.split(".").map((p) => `"${p.replaceAll('"', '""')}"`).join(".");
}

/** A setting name: the built-in ones, or one a DBCluster allows (checked by settingNameProblem). */
export type RoleSetting = string;
/** A role, or every role. */
export type Grantee = Ident | "PUBLIC";

const list = (xs: readonly string[]) => xs.join(", ");

export function createRole(
  role: Ident,
  o: { login: boolean; connectionLimit?: number; password?: Literal; validUntil?: Literal },
): string {
  let s = `CREATE ROLE ${role} ${o.login ? "LOGIN" : "NOLOGIN"}`;
  if (o.connectionLimit !== undefined) s += ` CONNECTION LIMIT ${int(o.connectionLimit)}`;
  if (o.password !== undefined) s += ` PASSWORD ${o.password}`;
  if (o.validUntil !== undefined) s += ` VALID UNTIL ${o.validUntil}`;
  return s;
}

/** `until` is a timestamp literal (ISO 8601, UTC) or 'infinity'. */
export function alterRoleValidUntil(role: Ident, until: Literal): string {
  return `ALTER ROLE ${role} VALID UNTIL ${until}`;
}

export function alterRoleLogin(role: Ident, login: boolean): string {
  return `ALTER ROLE ${role} ${login ? "LOGIN" : "NOLOGIN"}`;
}

export function alterRoleConnectionLimit(role: Ident, limit: number): string {
  return `ALTER ROLE ${role} CONNECTION LIMIT ${int(limit)}`;
}

/** `verifier` must be a SCRAM verifier (scram.ts), never a plaintext password. */
export function alterRolePassword(role: Ident, verifier: Literal): string {
  return `ALTER ROLE ${role} PASSWORD ${verifier}`;
}

/** Removes the role's password: it logs in by cloud IAM only (awsIam, azureEntra). */
export function alterRolePasswordNull(role: Ident): string {
  return `ALTER ROLE ${role} PASSWORD NULL`;
}

/** The Entra principal function of Azure Database for PostgreSQL (text, boolean, boolean). */
export const ENTRA_PRINCIPAL_FUNCTION = "pgaadauth_create_principal";

/**
 * Azure's `pgaadauth_create_principal(roleName, isAdmin, isMfa)` in `schema`: creates a LOGIN
 * role mapped to the Entra principal of that name; never an admin, no MFA claim required.
 */
export function createEntraPrincipal(schema: Ident, name: Literal): string {
  return `SELECT * FROM ${schema}.pgaadauth_create_principal(${name}, false, false)`;
}

export function setRoleConfig(
  role: Ident,
  o: { database?: Ident; setting: RoleSetting; value: Literal },
): string {
  const inDb = o.database === undefined ? "" : ` IN DATABASE ${o.database}`;
  return `ALTER ROLE ${role}${inDb} SET ${settingName(o.setting)} = ${o.value}`;
}

/** `ALTER ROLE u IN DATABASE d SET search_path = "a", "b"`: a list, each name an identifier. */
export function setRoleSearchPath(
  role: Ident,
  o: { database: Ident; schemas: readonly Ident[] },
): string {
  if (o.schemas.length === 0) throw new RangeError("search_path needs at least one schema");
  return `ALTER ROLE ${role} IN DATABASE ${o.database} SET search_path = ${list(o.schemas)}`;
}

export function resetRoleConfig(
  role: Ident,
  o: { database?: Ident; setting: RoleSetting },
): string {
  const inDb = o.database === undefined ? "" : ` IN DATABASE ${o.database}`;
  return `ALTER ROLE ${role}${inDb} RESET ${settingName(o.setting)}`;
}

export function commentOnRole(role: Ident, text: Literal | null): string {
  return `COMMENT ON ROLE ${role} IS ${text ?? "NULL"}`;
}

export function commentOnDatabase(db: Ident, text: Literal | null): string {
  return `COMMENT ON DATABASE ${db} IS ${text ?? "NULL"}`;
}

export function grantRole(role: Ident, member: Ident, o: { adminOption?: boolean } = {}): string {
  return `GRANT ${role} TO ${member}${o.adminOption ? " WITH ADMIN OPTION" : ""}`;
}

/** Revokes the membership, or with `adminOptionOnly` just the admin option. */
export function revokeRole(
  role: Ident,
  member: Ident,
  o: { adminOptionOnly?: boolean } = {},
): string {
  return `REVOKE ${o.adminOptionOnly ? "ADMIN OPTION FOR " : ""}${role} FROM ${member}`;
}

export function dropRole(role: Ident): string {
  return `DROP ROLE IF EXISTS ${role}`;
}

export function reassignOwned(from: Ident, to: Ident): string {
  return `REASSIGN OWNED BY ${from} TO ${to}`;
}

export function dropOwned(role: Ident): string {
  return `DROP OWNED BY ${role}`;
}

export function createDatabase(db: Ident, owner: Ident): string {
  return `CREATE DATABASE ${db} OWNER ${owner}`;
}

/** The options of {@link createDatabaseWith}: each value already a quoted literal. */
export interface CreateDatabaseOptions {
  template?: Ident;
  encoding?: Literal;
  locale?: Literal;
  lcCollate?: Literal;
  lcCtype?: Literal;
  localeProvider?: Literal;
  icuLocale?: Literal;
  tablespace?: Ident;
  allowConnections?: boolean;
  connectionLimit?: number;
  isTemplate?: boolean;
}

/** `CREATE DATABASE db OWNER owner` with the options given, in the server's grammar order. */
export function createDatabaseWith(db: Ident, owner: Ident, o: CreateDatabaseOptions): string {
  const parts = [`CREATE DATABASE ${db} OWNER ${owner}`];
  if (o.template) parts.push(`TEMPLATE ${o.template}`);
  if (o.encoding) parts.push(`ENCODING ${o.encoding}`);
  if (o.locale) parts.push(`LOCALE ${o.locale}`);
  if (o.lcCollate) parts.push(`LC_COLLATE ${o.lcCollate}`);
  if (o.lcCtype) parts.push(`LC_CTYPE ${o.lcCtype}`);
  if (o.localeProvider) parts.push(`LOCALE_PROVIDER ${o.localeProvider}`);
  if (o.icuLocale) parts.push(`ICU_LOCALE ${o.icuLocale}`);
  if (o.tablespace) parts.push(`TABLESPACE ${o.tablespace}`);
  if (o.allowConnections !== undefined) parts.push(`ALLOW_CONNECTIONS ${o.allowConnections}`);
  if (o.connectionLimit !== undefined) {
    parts.push(`CONNECTION LIMIT ${Math.trunc(o.connectionLimit)}`);
  }
  if (o.isTemplate !== undefined) parts.push(`IS_TEMPLATE ${o.isTemplate}`);
  return parts.join(" ");
}

export function alterDatabaseIsTemplate(db: Ident, isTemplate: boolean): string {
  return `ALTER DATABASE ${db} WITH IS_TEMPLATE ${isTemplate}`;
}

export function alterDatabaseConnectionLimit(db: Ident, limit: number): string {
  return `ALTER DATABASE ${db} WITH CONNECTION LIMIT ${Math.trunc(limit)}`;
}

export function alterDatabaseOwner(db: Ident, owner: Ident): string {
  return `ALTER DATABASE ${db} OWNER TO ${owner}`;
}

export function alterDatabaseAllowConnections(db: Ident, allow: boolean): string {
  return `ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS ${allow}`;
}

export function dropDatabase(db: Ident, o: { force?: boolean } = {}): string {
  return `DROP DATABASE IF EXISTS ${db}${o.force ? " WITH (FORCE)" : ""}`;
}

export function grantOnDatabase(
  privs: readonly DatabasePrivilege[],
  db: Ident,
  grantee: Grantee,
): string {
  return `GRANT ${list(privs)} ON DATABASE ${db} TO ${grantee}`;
}

export function revokeOnDatabase(
  privs: readonly DatabasePrivilege[],
  db: Ident,
  grantee: Grantee,
): string {
  return `REVOKE ${list(privs)} ON DATABASE ${db} FROM ${grantee}`;
}

/** `CREATE SCHEMA IF NOT EXISTS s AUTHORIZATION owner`. */
export function createSchema(schema: Ident, owner: Ident): string {
  return `CREATE SCHEMA IF NOT EXISTS ${schema} AUTHORIZATION ${owner}`;
}

export function alterSchemaOwner(schema: Ident, owner: Ident): string {
  return `ALTER SCHEMA ${schema} OWNER TO ${owner}`;
}

export function commentOnSchema(schema: Ident, text: Literal | null): string {
  return `COMMENT ON SCHEMA ${schema} IS ${text ?? "NULL"}`;
}

/** RESTRICT: a schema that still holds objects is refused by the server, never emptied. */
export function dropSchema(schema: Ident): string {
  return `DROP SCHEMA IF EXISTS ${schema} RESTRICT`;
}

export function grantOnSchemas(
  privs: readonly SchemaPrivilege[],
  schemas: readonly Ident[],
  grantee: Grantee,
): string {
  return `GRANT ${list(privs)} ON SCHEMA ${list(schemas)} TO ${grantee}`;
}

export function revokeOnSchemas(
  privs: readonly SchemaPrivilege[],
  schemas: readonly Ident[],
  grantee: Grantee,
): string {
  return `REVOKE ${list(privs)} ON SCHEMA ${list(schemas)} FROM ${grantee}`;
}

/** `tables` are qualified names (quote.ts `qualified`). */
export function grantOnTables(
  privs: readonly TablePrivilege[],
  tables: readonly Ident[],
  grantee: Grantee,
): string {
  return `GRANT ${list(privs)} ON TABLE ${list(tables)} TO ${grantee}`;
}

export function revokeOnTables(
  privs: readonly TablePrivilege[],
  tables: readonly Ident[],
  grantee: Grantee,
): string {
  return `REVOKE ${list(privs)} ON TABLE ${list(tables)} FROM ${grantee}`;
}

export function grantOnSequences(
  privs: readonly SequencePrivilege[],
  sequences: readonly Ident[],
  grantee: Grantee,
): string {
  return `GRANT ${list(privs)} ON SEQUENCE ${list(sequences)} TO ${grantee}`;
}

/**
 * `GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA …`: functions, aggregates and window functions that
 * exist now (not procedures, which ALL FUNCTIONS leaves out). The server refuses the whole
 * statement if one function there is one the current user may neither grant nor execute.
 */
export function grantExecuteOnAllFunctions(schemas: readonly Ident[], grantee: Grantee): string {
  if (schemas.length === 0) throw new RangeError("GRANT ON ALL FUNCTIONS needs a schema");
  return `GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ${list(schemas)} TO ${grantee}`;
}

/**
 * ALTER DEFAULT PRIVILEGES FOR ROLE `forRole` in the current database: in every schema, or only
 * in `inSchema` (then not ON SCHEMAS, which PostgreSQL refuses there).
 */
export function alterDefaultPrivileges(
  forRole: Ident,
  o: {
    action: "GRANT" | "REVOKE";
    privs: readonly DefaultPrivilege[];
    on: DefaultObjects;
    grantee: Grantee;
    inSchema?: Ident;
  },
): string {
  const verb = o.action === "GRANT"
    ? `GRANT ${list(o.privs)} ON ${o.on} TO`
    : `REVOKE ${list(o.privs)} ON ${o.on} FROM`;
  const where = o.inSchema === undefined ? "" : ` IN SCHEMA ${o.inSchema}`;
  return `ALTER DEFAULT PRIVILEGES FOR ROLE ${forRole}${where} ${verb} ${o.grantee}`;
}

/**
 * CREATE EXTENSION in `database`, in one transaction with `SET LOCAL search_path TO public`: our
 * sessions run with `search_path = pg_catalog, pg_temp` (slot.ts), under which an extension that
 * names no schema of its own would go to pg_catalog; `public` is where it went before.
 */
export function createExtension(
  name: Ident,
  database: string,
  o: { schema?: Ident; version?: Literal } = {},
): Statement {
  const schema = o.schema ? ` SCHEMA ${o.schema}` : "";
  const version = o.version ? ` VERSION ${o.version}` : "";
  return {
    sql: "SET LOCAL search_path TO public",
    together: [`CREATE EXTENSION IF NOT EXISTS ${name}${schema}${version}`],
    database,
  };
}

/** `ALTER EXTENSION ... UPDATE TO`, with the search_path CREATE EXTENSION gets. */
export function alterExtensionUpdate(name: Ident, database: string, version: Literal): Statement {
  return {
    sql: "SET LOCAL search_path TO public",
    together: [`ALTER EXTENSION ${name} UPDATE TO ${version}`],
    database,
  };
}

function int(n: number): string {
  if (!Number.isSafeInteger(n)) throw new RangeError(`Invalid integer in SQL: ${n}`);
  return String(n);
}

const PASSWORD_LITERAL = /\bPASSWORD\s+E?'(?:[^']|'')*'/gi;

/** The statement as it may appear in logs, events and errors: passwords replaced. */
export function redact(sql: string): string {
  return sql.replace(PASSWORD_LITERAL, "PASSWORD '<redacted>'");
}

/** Whether a statement changes the server (for logs and idempotence checks). */
export function isMutating(sql: string): boolean {
  return /^\s*(CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|REASSIGN)\b/i.test(sql);
}

// Issue 7, isolation from the databases dbtether does not manage (DBCluster spec.isolation).

/** One GRANT for several grantees (`grantees` must not be empty). */
export function grantOnDatabaseTo(
  privs: readonly DatabasePrivilege[],
  db: Ident,
  grantees: readonly Grantee[],
): string {
  if (grantees.length === 0) throw new RangeError("GRANT needs at least one grantee");
  return `GRANT ${list(privs)} ON DATABASE ${db} TO ${list(grantees)}`;
}

// Issue 7 items 6 and 7 (restores through a scratch database swapped in by rename).

/** Where a scratch database's locale comes from: the database it will replace. */
export interface DatabaseLocale {
  encoding: Literal;
  lcCollate: Literal;
  lcCtype: Literal;
  /** ICU databases (PG15+): the provider and its locale. */
  icuLocale?: Literal;
}

/** `CREATE DATABASE db OWNER owner TEMPLATE template0` with the given locale. */
export function createDatabaseFromTemplate0(
  db: Ident,
  o: { owner: Ident; locale?: DatabaseLocale },
): string {
  let s = `CREATE DATABASE ${db} OWNER ${o.owner} TEMPLATE template0`;
  const l = o.locale;
  if (l) {
    s += ` ENCODING ${l.encoding} LC_COLLATE ${l.lcCollate} LC_CTYPE ${l.lcCtype}`;
    if (l.icuLocale !== undefined) s += ` LOCALE_PROVIDER icu ICU_LOCALE ${l.icuLocale}`;
  }
  return s;
}

export function alterDatabaseRename(db: Ident, to: Ident): string {
  return `ALTER DATABASE ${db} RENAME TO ${to}`;
}
