/**
 * The default privileges the group roles get on what a role creates later, database-wide
 * (plan.ts: `FOR ROLE r`, schemas included) or in one schema (plan_schema_grants.ts: `FOR ROLE r
 * IN SCHEMA s`): one table of rows and one planner for both; and EXECUTE on the functions that
 * exist already, which ALTER DEFAULT PRIVILEGES does not reach.
 */
import type { FunctionGrantState } from "./catalog_functions.ts";
import { catalogIdent, ident } from "./quote.ts";
import * as st from "./statements.ts";
import type { DefaultObjects, DefaultPrivilege } from "./statements.ts";

/** One row: what `group` gets by default on objects of kind `on` (`code` in pg_default_acl). */
export interface DefaultRow {
  on: DefaultObjects;
  code: string;
  privs: DefaultPrivilege[];
  group: "readonly" | "readwrite";
}

/**
 * Tables, sequences and functions: what the readonly and readwrite groups get, in a schema or
 * anywhere. EXECUTE goes to readonly (readwrite and admin inherit it): PostgreSQL gives it to
 * PUBLIC by default, so this adds nothing on a server left as shipped, and keeps the
 * application's functions callable where the platform team revoked that default. A function
 * runs with its caller's privileges unless SECURITY DEFINER, so readonly calling one that writes
 * is still refused on the table.
 */
export const RELATION_DEFAULTS: readonly DefaultRow[] = [
  { on: "TABLES", code: "r", privs: ["SELECT"], group: "readonly" },
  { on: "TABLES", code: "r", privs: ["INSERT", "UPDATE", "DELETE"], group: "readwrite" },
  { on: "SEQUENCES", code: "S", privs: ["SELECT"], group: "readonly" },
  { on: "SEQUENCES", code: "S", privs: ["USAGE"], group: "readwrite" },
  { on: "FUNCTIONS", code: "f", privs: ["EXECUTE"], group: "readonly" },
];

/** Database-wide, schemas created later too (not possible IN SCHEMA). */
export const DATABASE_DEFAULTS: readonly DefaultRow[] = [
  { on: "SCHEMAS", code: "n", privs: ["USAGE"], group: "readonly" },
  ...RELATION_DEFAULTS,
];

/** A default-privilege entry as the catalog shows it. */
export interface DefaultEntry {
  forRole: string;
  objects: string;
  grantee: string;
  privilege: string;
}

/**
 * `ALTER DEFAULT PRIVILEGES FOR ROLE forRole [IN SCHEMA s]` statements for `rows`: with GRANT,
 * the privileges the grantees miss; with REVOKE, those they have.
 */
export function planDefaultRows(
  forRole: string,
  o: {
    rows: readonly DefaultRow[];
    grantees: { readonly: string; readwrite: string };
    acls: readonly DefaultEntry[];
    action: "GRANT" | "REVOKE";
    inSchema?: string;
  },
): string[] {
  const out: string[] = [];
  for (const d of o.rows) {
    const grantee = o.grantees[d.group];
    const have = (p: string) =>
      o.acls.some((a) =>
        a.forRole === forRole && a.objects === d.code && a.grantee === grantee && a.privilege === p
      );
    const privs = d.privs.filter((p) => o.action === "GRANT" ? !have(p) : have(p));
    if (privs.length === 0) continue;
    out.push(st.alterDefaultPrivileges(ident(forRole), {
      action: o.action,
      privs,
      on: d.on,
      grantee: ident(grantee),
      ...(o.inSchema === undefined ? {} : { inSchema: catalogIdent(o.inSchema) }),
    }));
  }
  return out;
}

/**
 * `GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA` to `grantee` where one of its functions misses
 * it, unless the statement is blocked there (catalog_functions.ts).
 */
export function planExecuteGrant(
  states: readonly FunctionGrantState[],
  grantee: string,
): string[] {
  const schemas = states.filter((s) => s.missing && !s.blocked).map((s) => catalogIdent(s.schema));
  return schemas.length ? [st.grantExecuteOnAllFunctions(schemas, ident(grantee))] : [];
}
