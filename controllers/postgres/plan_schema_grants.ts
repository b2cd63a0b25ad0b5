/**
 * The group roles of each declared schema (`<db>.<schema>_readonly`, `_readwrite`, `_admin`) and
 * their privileges, now and for objects created later: the per-schema sibling of the database's
 * groups in plan.ts. Pure.
 *
 * A DatabaseUser limited to a schema is a member of that schema's group only: CONNECT comes with
 * `_readonly`, and nothing grants it USAGE on any other schema, so it cannot read them.
 */
import type { ServerSnapshot } from "./catalog.ts";
import type { FunctionGrantState } from "./catalog_functions.ts";
import { type ClaimOptions, claimRole, refuse } from "./claims.ts";
import { formatMarker, type SchemaRoles, schemaRoles } from "./names.ts";
import { catalogIdent, type Ident, ident, literal, qualified } from "./quote.ts";
import * as st from "./statements.ts";
import { planDefaultRows, planExecuteGrant, RELATION_DEFAULTS } from "./plan_defaults.ts";
import type { Statement, TablePrivilege } from "./statements.ts";

/** A relation of one schema with what its groups hold on it. */
export interface SchemaRelation {
  name: string;
  /** r, p (tables), v, m, f (views, foreign tables), S (sequences). */
  kind: string;
  readonlyOk: boolean;
  readwriteOk: boolean;
}

/** A default-privilege entry of one schema (ALTER DEFAULT PRIVILEGES ... IN SCHEMA). */
export interface SchemaDefaultAcl {
  forRole: string;
  /** r tables, S sequences, f functions. */
  objects: string;
  grantee: string;
  privilege: string;
}

/** One declared schema as its groups see it (catalog_schemas.ts `observeSchemaGrants`). */
export interface SchemaGrantState {
  schema: string;
  readonlyUsage: boolean;
  adminCreate: boolean;
  relations: SchemaRelation[];
  /** The schema's functions as its readonly group sees them (none: an empty list). */
  functions: FunctionGrantState[];
  defaultAcls: SchemaDefaultAcl[];
}

/** The roles of each of `schemas` in `database`. */
export function rolesOfSchemas(database: string, schemas: readonly string[]): string[] {
  return schemas.flatMap((s) => Object.values(schemaRoles(database, s)));
}

/**
 * Server-level statements for the schemas' groups: each role with its marker in one
 * transaction (or checked to be this Database's), and readonly ⊂ readwrite ⊂ admin.
 */
export function planSchemaRoles(
  o: { database: string; schemas: readonly string[]; claim: ClaimOptions },
  snap: ServerSnapshot,
): { created: Statement[]; out: string[] } {
  const created: Statement[] = [];
  const out: string[] = [];
  for (const schema of o.schemas) {
    const roles = schemaRoles(o.database, schema);
    for (const r of [roles.readonly, roles.readwrite, roles.admin]) {
      const info = snap.roles.get(r);
      const q = ident(r);
      if (!info) {
        created.push({
          sql: st.createRole(q, { login: false }),
          together: [st.commentOnRole(q, literal(formatMarker(o.claim.want)))],
        });
        continue;
      }
      if (info.superuser) {
        refuse("RoleIsSuperuser", `Cannot use role ${JSON.stringify(r)}: superuser`);
      }
      out.push(...claimRole(r, snap, o.claim));
      if (info.canLogin) out.push(st.alterRoleLogin(q, false));
    }
    const member = (role: string, m: string) =>
      snap.memberships.some((x) => x.role === role && x.member === m);
    if (!member(roles.readonly, roles.readwrite)) {
      out.push(st.grantRole(ident(roles.readonly), ident(roles.readwrite)));
    }
    if (!member(roles.readwrite, roles.admin)) {
      out.push(st.grantRole(ident(roles.readwrite), ident(roles.admin)));
    }
  }
  return { created, out };
}

/**
 * `ALTER DEFAULT PRIVILEGES FOR ROLE forRole IN SCHEMA schema` statements that give `grantees`
 * (a schema's groups, or the database's readonly/readwrite) access to what `forRole` creates
 * there; with REVOKE, take back those that exist.
 */
export function planSchemaDefaults(
  forRole: string,
  o: {
    schema: string;
    grantees: Pick<SchemaRoles, "readonly" | "readwrite">;
    acls: readonly SchemaDefaultAcl[];
    action: "GRANT" | "REVOKE";
  },
): string[] {
  return planDefaultRows(forRole, {
    rows: RELATION_DEFAULTS,
    grantees: o.grantees,
    acls: o.acls,
    action: o.action,
    inSchema: o.schema,
  });
}

/**
 * Statements inside the database for each declared schema: USAGE and CREATE on it, the grants
 * on its relations and functions, and default privileges for every role that creates objects there (`creators`:
 * the database's owner role, which admin-level users create as, the admin, and the roles
 * without a marker that the admin acts for).
 */
export function planSchemaGrants(
  o: { database: string; creators: readonly string[] },
  states: readonly SchemaGrantState[],
): Statement[] {
  const out: string[] = [];
  for (const s of states) {
    const roles = schemaRoles(o.database, s.schema);
    const q = catalogIdent(s.schema);
    if (!s.readonlyUsage) out.push(st.grantOnSchemas(["USAGE"], [q], ident(roles.readonly)));
    if (!s.adminCreate) out.push(st.grantOnSchemas(["CREATE"], [q], ident(roles.admin)));
    const rels = (pick: (r: SchemaRelation) => boolean): Ident[] =>
      s.relations.filter(pick).map((r) => qualified(q, catalogIdent(r.name)));
    const seq = (r: SchemaRelation) => r.kind === "S";
    const roTables = rels((r) => !seq(r) && !r.readonlyOk);
    if (roTables.length) out.push(st.grantOnTables(["SELECT"], roTables, ident(roles.readonly)));
    const roSeqs = rels((r) => seq(r) && !r.readonlyOk);
    if (roSeqs.length) out.push(st.grantOnSequences(["SELECT"], roSeqs, ident(roles.readonly)));
    const rwTables = rels((r) => (r.kind === "r" || r.kind === "p") && !r.readwriteOk);
    if (rwTables.length) {
      const privs: TablePrivilege[] = ["INSERT", "UPDATE", "DELETE"];
      out.push(st.grantOnTables(privs, rwTables, ident(roles.readwrite)));
    }
    const rwSeqs = rels((r) => seq(r) && !r.readwriteOk);
    if (rwSeqs.length) out.push(st.grantOnSequences(["USAGE"], rwSeqs, ident(roles.readwrite)));
    out.push(...planExecuteGrant(s.functions, roles.readonly));
    for (const creator of new Set(o.creators)) {
      out.push(...planSchemaDefaults(creator, {
        schema: s.schema,
        grantees: roles,
        acls: s.defaultAcls,
        action: "GRANT",
      }));
    }
  }
  return out.map((sql) => ({ sql, database: o.database }));
}
