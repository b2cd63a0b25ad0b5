/**
 * Observation: read-only catalog queries (with bind parameters) that give the planners the state
 * of a server or of one database. Nothing here changes the server.
 *
 * The pools run postgres.js without `fetch_types`, so arrays would arrive as unparsed text:
 * array results are returned as JSON, array parameters are sent as JSON text.
 *
 * A little over 400 lines: one query per snapshot the planners read, kept together so the
 * catalog reads can be reviewed side by side (every one is read-only and parameterised).
 */
import type { Sql } from "./pool.ts";
import {
  type FunctionGrantState,
  observeFunctionGrants,
  schemaScope,
} from "./catalog_functions.ts";
import { observeRoleReach, type RoleReach } from "./reach.ts";

export interface RoleInfo {
  name: string;
  canLogin: boolean;
  connectionLimit: number;
  superuser: boolean;
  comment: string | null;
  /** rolvaliduntil in ms since the epoch; Infinity for 'infinity', null for none. */
  validUntilMs?: number | null;
}

/** `member` belongs to `role`; `adminOption` when any grant of it carries ADMIN OPTION. */
export interface Membership {
  role: string;
  member: string;
  adminOption: boolean;
}

export interface DatabaseInfo {
  name: string;
  owner: string;
  comment: string | null;
  allowConnections: boolean;
  /** Roles with CONNECT (explicit or by default ACL); "PUBLIC" for everyone. */
  connect: string[];
  /** Nobody ever granted or revoked anything on it (`datacl` is NULL): as CREATE DATABASE left it. */
  aclDefault: boolean;
  /** `datconnlimit`: -1 for no limit (absent in fixtures that do not care). */
  connectionLimit?: number;
  /** `datistemplate` (absent in fixtures that do not care). */
  isTemplate?: boolean;
  /** How it was created, for comparison with the spec (absent in fixtures that do not care). */
  created?: CreatedAs;
}

/** What CREATE DATABASE left that cannot be changed later (tablespace: not without a move). */
export interface CreatedAs {
  encoding: string;
  lcCollate: string;
  lcCtype: string;
  /** `datlocprovider` (15+): c libc, i icu, b builtin; absent before 15 (libc). */
  localeProvider?: string;
  /** `daticulocale` (15, 16) or `datlocale` (17+), when set. */
  providerLocale?: string;
  tablespace: string;
}

/** Server-level state about a set of roles and at most one database. */
export interface ServerSnapshot {
  /** The admin role dbtether connects as. */
  currentUser: string;
  /** `server_version_num`, e.g. 150004. */
  versionNum: number;
  roles: Map<string, RoleInfo>;
  /** Memberships where the role or the member is one of the asked roles or the current user. */
  memberships: Membership[];
  /** Roles (among the asked) whose privileges the current user has (pg_has_role USAGE). */
  adminInherits: Set<string>;
  /** Roles (among the asked) the current user holds WITH ADMIN OPTION: it may grant them. */
  adminOf?: Set<string>;
  /** Settings per role: key `<database or "">`, value name → value. */
  settings: Map<string, Map<string, Map<string, string>>>;
  database?: DatabaseInfo;
  /** What candidates for adoption can reach (see `adoptable` of {@link observeServer}). */
  reach?: Map<string, RoleReach>;
  /**
   * The schema of Azure's pgaadauth_create_principal, owned by a superuser; undefined when
   * there is none (observed for azureEntra users still to be created only).
   */
  entraFunction?: string;
}

/** Options of {@link observeServer}. */
export interface ObserveServerOptions {
  roles: readonly string[];
  database?: string;
  /**
   * Roles that may have to be adopted: for each that exists and whose comment is not `marker`
   * (not ours already), also read what it can reach. Asked only when adoption is requested and
   * allowed, so a converged reconcile sends no extra queries.
   */
  adoptable?: { roles: readonly string[]; marker: string };
}

/** Reads what the planners need about `roles` and `database` (both may not exist). */
export async function observeServer(sql: Sql, o: ObserveServerOptions): Promise<ServerSnapshot> {
  const names = [...new Set(o.roles)];
  const [me] = await sql<{ user: string; version: string }[]>`
    SELECT current_user AS user, current_setting('server_version_num') AS version`;
  const currentUser = me!.user;
  // A JSON text parameter: postgres.js needs fetched types to send real arrays.
  const namesJson = JSON.stringify(names);
  const roleRows = await sql<
    {
      name: string;
      login: boolean;
      connlimit: number;
      super: boolean;
      comment: string | null;
      until: number | null;
    }[]
  >`
    SELECT rolname AS name, rolcanlogin AS login, rolconnlimit AS connlimit, rolsuper AS super,
           shobj_description(oid, 'pg_authid') AS comment,
           (extract(epoch FROM rolvaliduntil) * 1000)::float8 AS until
    FROM pg_roles WHERE rolname IN (SELECT jsonb_array_elements_text(${namesJson}::text::jsonb))`;
  const roles = new Map<string, RoleInfo>();
  for (const r of roleRows) {
    roles.set(r.name, {
      name: r.name,
      canLogin: r.login,
      connectionLimit: r.connlimit,
      superuser: r.super,
      comment: r.comment,
      validUntilMs: r.until === null ? null : Number(r.until),
    });
  }
  const both = [...names, currentUser];
  const bothJson = JSON.stringify(both);
  const memberships = await sql<Membership[]>`
    SELECT r.rolname AS role, m.rolname AS member, bool_or(am.admin_option) AS "adminOption"
    FROM pg_auth_members am
    JOIN pg_roles r ON r.oid = am.roleid
    JOIN pg_roles m ON m.oid = am.member
    WHERE r.rolname IN (SELECT jsonb_array_elements_text(${bothJson}::text::jsonb)) OR m.rolname IN (SELECT jsonb_array_elements_text(${bothJson}::text::jsonb))
    GROUP BY r.rolname, m.rolname`;
  const inherit = await sql<{ name: string; usage: boolean; admin: boolean }[]>`
    SELECT rolname AS name, pg_has_role(current_user, oid, 'USAGE') AS usage,
           pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION') AS admin
    FROM pg_roles
    WHERE rolname IN (SELECT jsonb_array_elements_text(${namesJson}::text::jsonb))`;
  const settingRows = await sql<{ role: string; db: string | null; config: string[] }[]>`
    SELECT r.rolname AS role, d.datname AS db, array_to_json(s.setconfig) AS config
    FROM pg_db_role_setting s
    JOIN pg_roles r ON r.oid = s.setrole
    LEFT JOIN pg_database d ON d.oid = s.setdatabase
    WHERE r.rolname IN (SELECT jsonb_array_elements_text(${namesJson}::text::jsonb))`;
  const settings = new Map<string, Map<string, Map<string, string>>>();
  for (const s of settingRows) {
    const perRole = settings.get(s.role) ?? new Map<string, Map<string, string>>();
    settings.set(s.role, perRole);
    const kv = new Map<string, string>();
    for (const item of s.config ?? []) {
      const eq = item.indexOf("=");
      if (eq > 0) kv.set(item.slice(0, eq), item.slice(eq + 1));
    }
    perRole.set(s.db ?? "", kv);
  }
  const snap: ServerSnapshot = {
    currentUser,
    versionNum: Number(me!.version),
    roles,
    memberships: memberships.map((m) => ({ ...m })),
    adminInherits: new Set(inherit.filter((r) => r.usage).map((r) => r.name)),
    adminOf: new Set(inherit.filter((r) => r.admin).map((r) => r.name)),
    settings,
  };
  if (o.database !== undefined) {
    const db = await observeDatabaseRow(sql, o.database);
    if (db) snap.database = db;
  }
  const candidates = (o.adoptable?.roles ?? []).filter((r) =>
    roles.has(r) && roles.get(r)!.comment !== o.adoptable!.marker
  );
  if (candidates.length) {
    snap.reach = new Map();
    for (const r of new Set(candidates)) snap.reach.set(r, await observeRoleReach(sql, r));
  }
  return snap;
}

async function observeDatabaseRow(sql: Sql, name: string): Promise<DatabaseInfo | undefined> {
  const [row] = await sql<
    {
      owner: string;
      comment: string | null;
      allow: boolean;
      connect: string[];
      pristine: boolean;
      connlimit: number;
      template: boolean;
      created: CreatedAs;
    }[]
  >`
    SELECT pg_get_userbyid(d.datdba) AS owner, d.datacl IS NULL AS pristine,
           d.datconnlimit AS connlimit, d.datistemplate AS template,
           -- Columns that differ by major are read through the row's JSON: absent is null.
           jsonb_strip_nulls(jsonb_build_object(
             'encoding', pg_encoding_to_char(d.encoding),
             'lcCollate', d.datcollate, 'lcCtype', d.datctype,
             'localeProvider', to_jsonb(d) ->> 'datlocprovider',
             'providerLocale', coalesce(to_jsonb(d) ->> 'datlocale',
                                        to_jsonb(d) ->> 'daticulocale'),
             'tablespace', (SELECT spcname FROM pg_tablespace t WHERE t.oid = d.dattablespace)
           )) AS created,
           shobj_description(d.oid, 'pg_database') AS comment,
           d.datallowconn AS allow,
           array_to_json(array(
             SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
             FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
             WHERE a.privilege_type = 'CONNECT'
           )) AS connect
    FROM pg_database d WHERE d.datname = ${name}`;
  if (!row) return undefined;
  return {
    name,
    owner: row.owner,
    comment: row.comment,
    allowConnections: row.allow,
    connect: row.connect,
    aclDefault: row.pristine,
    connectionLimit: row.connlimit,
    isTemplate: row.template,
    created: row.created,
  };
}

/** One relation of a database with the privileges the group roles have on it. */
export interface RelationInfo {
  schema: string;
  name: string;
  /** r, p (tables), v, m, f (views, foreign tables), S (sequences). */
  kind: string;
  readonlyOk: boolean;
  readwriteOk: boolean;
}

export interface SchemaInfo {
  name: string;
  readonlyUsage: boolean;
  adminCreate: boolean;
  /**
   * D_owner may create here: as the owner (via pg_database_owner from 15) or by a grant. Up to
   * 14 `public` is not the database owner's, and admin-level users create as D_owner.
   */
  ownerCreate: boolean;
  publicCreate: boolean;
}

/** A default-privilege entry (all schemas) of the current database. */
export interface DefaultAcl {
  forRole: string;
  /** r tables, S sequences, f functions, n schemas. */
  objects: string;
  grantee: string;
  privilege: string;
}

/** Database-level state, read while connected to that database. */
export interface DatabaseSnapshot {
  /** Schemas whose owner the current user can act for (others cannot be granted on). */
  schemas: SchemaInfo[];
  relations: RelationInfo[];
  /** What the readonly group holds on the functions of each schema. */
  functions: FunctionGrantState[];
  defaultAcls: DefaultAcl[];
  extensions: Set<string>;
  /**
   * Roles besides the database's owner role whose new objects need default privileges: the
   * admin itself, and roles dbtether did not create that may create objects here and whose
   * privileges the admin has (so it may ALTER DEFAULT PRIVILEGES FOR them). Superusers and
   * roles with a dbtether marker are left out (login roles of users get theirs from the user
   * planner).
   */
  creators: string[];
}

/** Reads schemas, relations and default privileges for the database's group roles. */
export async function observeDatabase(
  sql: Sql,
  groups: { readonly: string; admin: string; readwrite: string; owner: string },
): Promise<DatabaseSnapshot> {
  const schemas = await sql<SchemaInfo[]>`
    SELECT n.nspname AS name,
           has_schema_privilege(${groups.readonly}, n.oid, 'USAGE') AS "readonlyUsage",
           has_schema_privilege(${groups.admin}, n.oid, 'CREATE') AS "adminCreate",
           has_schema_privilege(${groups.owner}, n.oid, 'CREATE') AS "ownerCreate",
           EXISTS (SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                   WHERE a.grantee = 0 AND a.privilege_type = 'CREATE') AS "publicCreate"
    FROM pg_namespace n
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND pg_has_role(current_user, n.nspowner, 'USAGE')
    ORDER BY 1`;
  const relations = await observeRelations(sql, groups);
  const defaultAcls = await observeDefaultAcls(sql);
  const ext = await sql<{ name: string }[]>`SELECT extname AS name FROM pg_extension`;
  return {
    schemas: schemas.map((s) => ({ ...s })),
    relations: relations.map((r) => ({ ...r })),
    functions: await observeFunctionGrants(sql, groups.readonly),
    defaultAcls,
    extensions: new Set(ext.map((e) => e.name)),
    creators: await observeCreators(sql),
  };
}

/**
 * Tables, views and sequences of the current database (of one schema, or of every schema but the
 * system ones) whose owner the admin can act for, with what `groups` hold on each.
 */
export async function observeRelations(
  sql: Sql,
  groups: { readonly: string; readwrite: string },
  schema?: string,
): Promise<RelationInfo[]> {
  const rows = await sql<RelationInfo[]>`
    SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
           CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(${groups.readonly}, c.oid, 'SELECT')
                ELSE has_table_privilege(${groups.readonly}, c.oid, 'SELECT') END AS "readonlyOk",
           CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(${groups.readwrite}, c.oid, 'USAGE')
                WHEN c.relkind IN ('r', 'p') THEN
                  has_table_privilege(${groups.readwrite}, c.oid, 'INSERT')
                  AND has_table_privilege(${groups.readwrite}, c.oid, 'UPDATE')
                  AND has_table_privilege(${groups.readwrite}, c.oid, 'DELETE')
                ELSE true END AS "readwriteOk"
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND ${schemaScope(sql, schema)}
      AND pg_has_role(current_user, c.relowner, 'USAGE')
    ORDER BY 1, 2`;
  return rows.map((r) => ({ ...r }));
}

/** Default privileges (for all schemas) of the current database. */
export async function observeDefaultAcls(sql: Sql): Promise<DefaultAcl[]> {
  const rows = await sql<DefaultAcl[]>`
    SELECT pg_get_userbyid(d.defaclrole) AS "forRole", d.defaclobjtype::text AS objects,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee,
           a.privilege_type AS privilege
    FROM pg_default_acl d, aclexplode(d.defaclacl) a
    WHERE d.defaclnamespace = 0`;
  return rows.map((r) => ({ ...r }));
}

/** A privilege granted directly to a role on a table (or view) of the current database. */
export interface DirectGrant {
  schema: string;
  name: string;
  privilege: string;
  /** Who is recorded as having granted it. */
  grantor: string;
  /** The table's owner; when it is the grantee itself, this is the owner's own entry. */
  owner: string;
}

/** Privileges granted directly to `role` on tables and views of the current database. */
export async function observeDirectTableGrants(sql: Sql, role: string): Promise<DirectGrant[]> {
  const rows = await sql<DirectGrant[]>`
    SELECT n.nspname AS schema, c.relname AS name, a.privilege_type AS privilege,
           pg_get_userbyid(a.grantor) AS grantor, pg_get_userbyid(c.relowner) AS owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
    WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = ${role})
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    ORDER BY 1, 2, 3, 4`;
  return rows.map((r) => ({ ...r }));
}

/** Tables and views of the current database that `role` owns (it holds every privilege on them). */
export async function observeOwnedTables(
  sql: Sql,
  role: string,
): Promise<{ schema: string; name: string }[]> {
  const rows = await sql<{ schema: string; name: string }[]>`
    SELECT n.nspname AS schema, c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = ${role})
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    ORDER BY 1, 2`;
  return rows.map((r) => ({ ...r }));
}

/** Databases where `role` owns objects or has privileges or default privileges. */
export async function databasesDependingOn(sql: Sql, role: string): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    SELECT DISTINCT d.datname AS name
    FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
    WHERE s.refclassid = 'pg_authid'::regclass
      AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = ${role})
    ORDER BY 1`;
  return rows.map((r) => r.name);
}

/** Sessions connected to `database`, with their role and whether we may signal them. */
export async function sessionsIn(
  sql: Sql,
  database: string,
): Promise<{ pid: number; role: string | null; canSignal: boolean }[]> {
  const rows = await sql<{ pid: number; role: string | null; canSignal: boolean }[]>`
    SELECT pid, usename AS role,
           (usesysid IS NOT NULL AND (pg_has_role(current_user, usesysid, 'USAGE')
              OR (pg_has_role(current_user, 'pg_signal_backend', 'USAGE')
                  AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = usesysid)))) AS "canSignal"
    FROM pg_stat_activity WHERE datname = ${database} AND pid <> pg_backend_pid()`;
  return rows.map((r) => ({ ...r }));
}

// Issue 7, isolation from the databases dbtether does not manage (DBCluster spec.isolation).

/** A database of the server, as the isolation planner sees it. */
export interface ServerDatabase {
  name: string;
  owner: string;
  /** The database's comment: dbtether's claim (`dbtether:...`) when it manages it. */
  comment: string | null;
  /** The owner role's comment: a dbtether marker when dbtether created the owner. */
  ownerComment: string | null;
  template: boolean;
  /** Whether the admin has the owner's privileges (pg_has_role USAGE), so may change the ACL. */
  ownerActable: boolean;
  /** Grantors of PUBLIC's CONNECT (the owner, normally); empty when PUBLIC cannot connect. */
  publicConnectBy: string[];
  /** Roles with a CONNECT entry of their own in the ACL (the owner's implicit one included). */
  connect: string[];
}

/** A role of the server, as the isolation planner sees it (pg_* roles left out). */
export interface ServerRole {
  name: string;
  login: boolean;
  superuser: boolean;
  comment: string | null;
}

/** Every database and every role (but pg_*) of the server. */
export interface IsolationSnapshot {
  currentUser: string;
  databases: ServerDatabase[];
  roles: ServerRole[];
}

/** Reads what the isolation planner needs: all databases with their CONNECT ACL, all roles. */
export async function observeIsolation(sql: Sql): Promise<IsolationSnapshot> {
  const [me] = await sql<{ user: string }[]>`SELECT current_user AS user`;
  const databases = await sql<ServerDatabase[]>`
    SELECT d.datname AS name, pg_get_userbyid(d.datdba) AS owner,
           shobj_description(d.oid, 'pg_database') AS comment,
           shobj_description(d.datdba, 'pg_authid') AS "ownerComment",
           d.datistemplate AS template,
           pg_has_role(current_user, d.datdba, 'USAGE') AS "ownerActable",
           array_to_json(array(
             SELECT pg_get_userbyid(a.grantor)
             FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
             WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT' ORDER BY 1
           )) AS "publicConnectBy",
           array_to_json(array(
             SELECT DISTINCT pg_get_userbyid(a.grantee)
             FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
             WHERE a.grantee <> 0 AND a.privilege_type = 'CONNECT' ORDER BY 1
           )) AS connect
    FROM pg_database d ORDER BY 1`;
  const roles = await sql<ServerRole[]>`
    SELECT rolname AS name, rolcanlogin AS login, rolsuper AS superuser,
           shobj_description(oid, 'pg_authid') AS comment
    FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1`;
  return {
    currentUser: me!.user,
    databases: databases.map((d) => ({ ...d })),
    roles: roles.map((r) => ({ ...r })),
  };
}

// Issue 7, default privileges for what the admin (and roles it acts for) create later.

/** {@link DatabaseSnapshot.creators} of the current database. */
export async function observeCreators(sql: Sql): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    SELECT r.rolname AS name FROM pg_roles r
    WHERE r.rolname !~ '^pg_' AND (r.rolname = current_user OR (
      NOT r.rolsuper
      AND pg_has_role(current_user, r.oid, 'USAGE')
      AND coalesce(shobj_description(r.oid, 'pg_authid'), '') NOT LIKE 'dbtether:%'
      AND EXISTS (SELECT 1 FROM pg_namespace n
                  WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                    AND has_schema_privilege(r.oid, n.oid, 'CREATE'))))
    ORDER BY 1`;
  return rows.map((r) => r.name);
}
