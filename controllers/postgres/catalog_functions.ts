/**
 * What a group holds on the functions of each schema, for `GRANT EXECUTE ON ALL FUNCTIONS IN
 * SCHEMA` (plan.ts, plan_schema_grants.ts). Read-only, bind parameters only.
 */
import type { Sql } from "./pool.ts";

/** The functions of one schema (procedures left out, as ALL FUNCTIONS leaves them out). */
export interface FunctionGrantState {
  schema: string;
  /**
   * A function whose owner the admin acts for, not part of an extension, that the group cannot
   * execute.
   */
  missing: boolean;
  /**
   * GRANT … ON ALL FUNCTIONS IN SCHEMA must not be sent: the admin lacks USAGE on the schema
   * or may neither grant nor execute one of its functions (the server refuses the statement),
   * or an extension's function there is kept from the group on purpose (the statement would
   * grant it too).
   */
  blocked: boolean;
}

/** A condition on `n.nspname`: the schema given, or every schema but the system ones. */
export function schemaScope(sql: Sql, schema: string | undefined) {
  return schema === undefined
    ? sql`n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'`
    : sql`n.nspname = ${schema}`;
}

/** Per schema with functions (one schema, or every schema but the system ones). */
export async function observeFunctionGrants(
  sql: Sql,
  grantee: string,
  schema?: string,
): Promise<FunctionGrantState[]> {
  const rows = await sql<FunctionGrantState[]>`
    WITH f AS (
      SELECT p.pronamespace,
             pg_has_role(current_user, p.proowner, 'USAGE') AS actable,
             has_function_privilege(current_user, p.oid, 'EXECUTE') AS "adminExecutes",
             has_function_privilege(${grantee}, p.oid, 'EXECUTE') AS "groupExecutes",
             EXISTS (SELECT 1 FROM pg_depend d
                     WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                       AND d.deptype = 'e') AS extension
      FROM pg_proc p WHERE p.prokind <> 'p'
    )
    SELECT n.nspname AS schema,
           bool_or(f.actable AND NOT f.extension AND NOT f."groupExecutes") AS missing,
           NOT has_schema_privilege(current_user, n.oid, 'USAGE')
             OR bool_or(NOT f.actable AND NOT f."adminExecutes")
             OR bool_or(f.extension AND NOT f."groupExecutes") AS blocked
    FROM f JOIN pg_namespace n ON n.oid = f.pronamespace
    WHERE ${schemaScope(sql, schema)}
    GROUP BY n.oid, n.nspname
    ORDER BY 1`;
  return rows.map((r) => ({ ...r }));
}
