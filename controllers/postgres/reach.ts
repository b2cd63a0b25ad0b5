/**
 * What an existing role can reach: read-only catalog queries (bind parameters only), asked only
 * to judge whether the role may be adopted (adoption.ts).
 */
import type { Sql } from "./pool.ts";

/** One role that a role is, or is a member of (at any depth), with its powerful attributes. */
export interface ReachedRole {
  name: string;
  /** The role itself rather than one of its groups. */
  self: boolean;
  superuser: boolean;
  createRole: boolean;
  createDb: boolean;
  bypassRls: boolean;
  replication: boolean;
  comment: string | null;
}

/** A database where a role (or one of its groups) owns the database or objects, or holds privileges. */
export interface ReachedDatabase {
  name: string;
  /** The database's comment (dbtether's claim, if any). */
  comment: string | null;
  /** The comment of the database's owner role. */
  ownerComment: string | null;
}

/** What an existing role can reach: read only to judge whether it may be adopted. */
export interface RoleReach {
  roles: ReachedRole[];
  databases: ReachedDatabase[];
  /**
   * The admin (current_user) holds the role WITH ADMIN OPTION, directly or through a group
   * (pg_has_role 'MEMBER WITH ADMIN OPTION'): from 16 a CREATEROLE admin may change only such
   * roles (its password, comment, memberships).
   */
  adminOption: boolean;
}

/**
 * The role, every role it is a member of at any depth (membership gives SET ROLE, so the
 * attributes of any of them are the role's too), and every database where one of them owns
 * the database, owns objects or holds privileges (pg_shdepend).
 */
export async function observeRoleReach(sql: Sql, role: string): Promise<RoleReach> {
  const roles = await sql<(ReachedRole & { oid: number })[]>`
    WITH RECURSIVE up(oid) AS (
      SELECT oid FROM pg_roles WHERE rolname = ${role}
      UNION
      SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.oid
    )
    SELECT r.rolname AS name, r.rolname = ${role} AS self, r.rolsuper AS superuser,
           r.rolcreaterole AS "createRole", r.rolcreatedb AS "createDb",
           r.rolbypassrls AS "bypassRls", r.rolreplication AS replication,
           shobj_description(r.oid, 'pg_authid') AS comment
    FROM up JOIN pg_roles r ON r.oid = up.oid
    ORDER BY r.rolname = ${role} DESC, r.rolname`;
  const databases = await sql<ReachedDatabase[]>`
    WITH RECURSIVE up(oid) AS (
      SELECT oid FROM pg_roles WHERE rolname = ${role}
      UNION
      SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.oid
    )
    SELECT DISTINCT d.datname AS name, shobj_description(d.oid, 'pg_database') AS comment,
           shobj_description(d.datdba, 'pg_authid') AS "ownerComment"
    FROM pg_shdepend s
    JOIN pg_database d ON d.oid = CASE WHEN s.dbid = 0 THEN s.objid ELSE s.dbid END
    WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid IN (SELECT oid FROM up)
      AND (s.dbid <> 0 OR s.classid = 'pg_database'::regclass)
    ORDER BY 1`;
  const [admin] = await sql<{ adminOption: boolean }[]>`
    SELECT coalesce(bool_or(pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION')), false)
      AS "adminOption"
    FROM pg_roles WHERE rolname = ${role}`;
  return {
    adminOption: admin?.adminOption ?? false,
    roles: roles.map((r) => ({
      name: r.name,
      self: r.self,
      superuser: r.superuser,
      createRole: r.createRole,
      createDb: r.createDb,
      bypassRls: r.bypassRls,
      replication: r.replication,
      comment: r.comment,
    })),
    databases: databases.map((d) => ({ ...d })),
  };
}
