/**
 * Pure planners for databases (and the helpers the user planner in plan_user.ts shares): from a desired state and an observed snapshot, the statements that converge the
 * server, in order. An empty plan means nothing to do, and the executors then send no mutating
 * SQL. Refusals (a name claimed by someone else, claims.ts) are TerminalErrors with a CamelCase
 * reason.
 */
import type { DatabaseSnapshot, DefaultAcl, Membership, ServerSnapshot } from "./catalog.ts";
import {
  checkDatabaseClaim,
  type ClaimOptions,
  claimRole,
  type DatabaseSpec,
  FORCE_ADOPT_ANNOTATION,
  refuse,
  roleMarkerOf,
} from "./claims.ts";
import {
  type DatabaseRoles,
  databaseRoles,
  formatMarker,
  parseMarker,
  sameMarker,
  schemaRoles,
} from "./names.ts";
import { alterOptions, createOptions } from "./plan_database_options.ts";
import { DATABASE_DEFAULTS, planDefaultRows, planExecuteGrant } from "./plan_defaults.ts";
import { planSchemaRoles } from "./plan_schema_grants.ts";
import { catalogIdent, ident, literal, qualified, userIdent } from "./quote.ts";
import * as st from "./statements.ts";
import type { Statement } from "./statements.ts";

export type { DatabaseSpec } from "./claims.ts";

function isMember(snap: ServerSnapshot, role: string, member: string): Membership | undefined {
  return snap.memberships.find((m) => m.role === role && m.member === member);
}

/** Server-level statements for a Database: roles, the database, its claim and CONNECT. */
export function planDatabaseServer(spec: DatabaseSpec, snap: ServerSnapshot): Statement[] {
  const roles = databaseRoles(spec.database);
  const want = roleMarkerOf(spec.marker, "Database");
  const out: string[] = [];
  const created: Statement[] = [];
  checkDatabaseClaim(spec, snap);
  const claim: Omit<ClaimOptions, "want"> = {
    adopt: spec.forceAdopt === true,
    consent: spec.consent,
    annotation: spec.adoptAnnotation ?? FORCE_ADOPT_ANNOTATION,
    // Force-adopt moves a database between resources of one namespace, roles included.
    replaceable: (have) => have.kind === "Database" && have.namespace === want.namespace,
  };
  for (const r of [roles.owner, roles.readonly, roles.readwrite, roles.admin]) {
    const info = snap.roles.get(r);
    const q = ident(r);
    if (!info) {
      // One transaction (issue 7 item 11): a role left without its marker by a crash or a
      // deposed leader stopped between the two would be refused by every later reconcile.
      created.push({
        sql: st.createRole(q, { login: false }),
        together: [st.commentOnRole(q, literal(formatMarker(want)))],
      });
      continue;
    }
    if (info.superuser) {
      refuse("RoleIsSuperuser", `Cannot use role ${JSON.stringify(r)}: superuser`);
    }
    out.push(...claimRole(r, snap, { ...claim, want }));
    if (info.canLogin) out.push(st.alterRoleLogin(q, false));
  }
  const schemaNames = (spec.schemas ?? []).map((s) => s.name);
  const schemaGroups = planSchemaRoles({
    database: spec.database,
    schemas: schemaNames,
    claim: { ...claim, want },
  }, snap);
  created.push(...schemaGroups.created);
  out.push(...schemaGroups.out);
  // The admin acts for the owner role: CREATE DATABASE ... OWNER (PG16+ needs SET on it), ALTER
  // DEFAULT PRIVILEGES FOR ROLE owner, and granting on objects the owner role owns.
  if (!snap.adminInherits.has(roles.owner)) {
    out.push(st.grantRole(ident(roles.owner), ident(snap.currentUser)));
  }
  // CREATE SCHEMA ... AUTHORIZATION and ALTER SCHEMA ... OWNER need SET on the owning role.
  // A DatabaseUser's role is handled by the schema planner, which observes it (plan_schemas.ts).
  const schemaOwners = new Set(
    (spec.schemas ?? []).flatMap((s) => typeof s.owner === "string" ? [roles[s.owner]] : []),
  );
  for (const r of [roles.admin, roles.readwrite, roles.readonly]) {
    if (schemaOwners.has(r) && !snap.adminInherits.has(r)) {
      out.push(st.grantRole(ident(r), ident(snap.currentUser)));
    }
  }
  if (!isMember(snap, roles.readonly, roles.readwrite)) {
    out.push(st.grantRole(ident(roles.readonly), ident(roles.readwrite)));
  }
  if (!isMember(snap, roles.readwrite, roles.admin)) {
    out.push(st.grantRole(ident(roles.readwrite), ident(roles.admin)));
  }
  const db = userIdent(spec.database, { adminRole: snap.currentUser });
  const info = snap.database;
  const connect = new Set(info?.connect ?? ["PUBLIC", roles.owner]);
  const options = spec.options ?? {};
  if (!info) {
    out.push(
      st.createDatabaseWith(db, ident(roles.owner), createOptions(options, snap.versionNum)),
    );
  } else {
    if (info.owner !== roles.owner) out.push(st.alterDatabaseOwner(db, ident(roles.owner)));
    out.push(...alterOptions(db, options, info));
  }
  if (!info || !sameMarker(parseMarker(info.comment), spec.marker)) {
    out.push(st.commentOnDatabase(db, literal(formatMarker(spec.marker))));
  }
  if (spec.revokePublicConnect && connect.has("PUBLIC")) {
    out.push(st.revokeOnDatabase(["CONNECT"], db, "PUBLIC"));
  }
  if (!spec.revokePublicConnect && !connect.has("PUBLIC")) {
    out.push(st.grantOnDatabase(["CONNECT"], db, "PUBLIC"));
  }
  // A user limited to schemas connects through the readonly group of one of them.
  for (
    const r of [
      roles.readonly,
      ...schemaNames.map((s) => schemaRoles(spec.database, s).readonly),
    ]
  ) {
    if (!connect.has(r)) out.push(st.grantOnDatabase(["CONNECT"], db, ident(r)));
  }
  return [...created, ...out.map((sql) => ({ sql }))];
}

/** ALTER DEFAULT PRIVILEGES statements that give the groups access to what `forRole` creates. */
export function planDefaults(
  forRole: string,
  roles: DatabaseRoles,
  acls: readonly DefaultAcl[],
  action: "GRANT" | "REVOKE",
): string[] {
  return planDefaultRows(forRole, { rows: DATABASE_DEFAULTS, grantees: roles, acls, action });
}

/**
 * Statements inside the database: schema, table, function and default privileges, extensions.
 * Schema and relation names come from the catalog and are quoted whatever they hold
 * (catalogIdent): an object named with a control character gets its grants like the others.
 */
export function planDatabaseInside(spec: DatabaseSpec, snap: DatabaseSnapshot): Statement[] {
  const roles = databaseRoles(spec.database);
  const out: string[] = [];
  const schemas = (pick: (s: DatabaseSnapshot["schemas"][number]) => boolean) =>
    snap.schemas.filter(pick).map((s) => catalogIdent(s.name));
  // PG < 15 lets PUBLIC create in `public`; readwrite users must not be able to create tables.
  const publicCreate = schemas((s) => s.publicCreate);
  if (publicCreate.length) out.push(st.revokeOnSchemas(["CREATE"], publicCreate, "PUBLIC"));
  const usage = schemas((s) => !s.readonlyUsage);
  if (usage.length) out.push(st.grantOnSchemas(["USAGE"], usage, ident(roles.readonly)));
  // Where PUBLIC's CREATE is revoked now, D_admin's CREATE may have come through PUBLIC only.
  const create = schemas((s) => !s.adminCreate || s.publicCreate);
  if (create.length) out.push(st.grantOnSchemas(["CREATE"], create, ident(roles.admin)));
  const ownerCreate = schemas((s) => !s.ownerCreate || s.publicCreate);
  if (ownerCreate.length) {
    out.push(st.grantOnSchemas(["CREATE"], ownerCreate, ident(roles.owner)));
  }
  const rels = (pick: (r: DatabaseSnapshot["relations"][number]) => boolean) =>
    snap.relations.filter(pick).map((r) => qualified(catalogIdent(r.schema), catalogIdent(r.name)));
  const seq = (r: { kind: string }) => r.kind === "S";
  const roTables = rels((r) => !seq(r) && !r.readonlyOk);
  if (roTables.length) out.push(st.grantOnTables(["SELECT"], roTables, ident(roles.readonly)));
  const roSeqs = rels((r) => seq(r) && !r.readonlyOk);
  if (roSeqs.length) out.push(st.grantOnSequences(["SELECT"], roSeqs, ident(roles.readonly)));
  const rwTables = rels((r) => (r.kind === "r" || r.kind === "p") && !r.readwriteOk);
  if (rwTables.length) {
    out.push(st.grantOnTables(["INSERT", "UPDATE", "DELETE"], rwTables, ident(roles.readwrite)));
  }
  const rwSeqs = rels((r) => seq(r) && !r.readwriteOk);
  if (rwSeqs.length) out.push(st.grantOnSequences(["USAGE"], rwSeqs, ident(roles.readwrite)));
  out.push(...planExecuteGrant(snap.functions, roles.readonly));
  out.push(...planDefaults(roles.owner, roles, snap.defaultAcls, "GRANT"));
  // Objects belong to the role that creates them: what the admin (a platform engineer with the
  // master user) or a role it acts for creates later is not the owner role's, so it needs
  // defaults of its own for the groups to use it at once, not only after the next reconcile.
  for (const creator of snap.creators) {
    if (creator !== roles.owner) {
      out.push(...planDefaults(creator, roles, snap.defaultAcls, "GRANT"));
    }
  }
  const extensions = (spec.extensions ?? []).filter((e) => !snap.extensions.has(e))
    .map((e) => st.createExtension(ident(e), spec.database));
  return [...out.map((sql) => ({ sql, database: spec.database })), ...extensions];
}
