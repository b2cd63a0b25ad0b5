/**
 * What differs between the PostgreSQL majors dbtether supports (13–18), decided here once from
 * `server_version_num`. Each entry names the major it changed in; docs/design/privileges.md
 * says what we do about each.
 */

/** The server behaviours that change what SQL the planners send. */
export interface ServerCapabilities {
  major: number;
  /**
   * 16+: a CREATEROLE role may grant membership only in roles it holds WITH ADMIN OPTION (up to
   * 15 in any non-superuser role), so it can borrow only such roles.
   */
  grantNeedsAdminOption: boolean;
  /**
   * 16+: creating a role makes the creator a member WITH ADMIN OPTION, without INHERIT and SET
   * (unless `createrole_self_grant` says otherwise): being a member no longer means having the
   * role's privileges, so checks use pg_has_role(..., 'USAGE'), never pg_auth_members alone.
   */
  creatorHoldsAdminOption: boolean;
  /**
   * Up to 14: PUBLIC may CREATE in schema `public` of new databases, and `public` is owned by
   * the bootstrap superuser, so a non-superuser admin cannot revoke it (15 made the database
   * owner own `public` and dropped PUBLIC's CREATE).
   */
  publicCreatesInPublic: boolean;
  /** 14+: the `pg_database_owner` role (owner of `public` from 15). */
  hasDatabaseOwnerRole: boolean;
  /** 17+: the MAINTAIN privilege on tables and the `pg_maintain` role. */
  hasMaintain: boolean;
}

/** Capabilities of a server from its `server_version_num` (e.g. 180006). */
export function serverCapabilities(versionNum: number): ServerCapabilities {
  const major = Math.floor(versionNum / 10000);
  return {
    major,
    grantNeedsAdminOption: major >= 16,
    creatorHoldsAdminOption: major >= 16,
    publicCreatesInPublic: major < 15,
    hasDatabaseOwnerRole: major >= 14,
    hasMaintain: major >= 17,
  };
}
