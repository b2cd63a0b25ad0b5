/**
 * The schemas of the current database as the schema planner (plan_schemas.ts) sees them: owner,
 * claim, and what PUBLIC may do there. Read-only, no parameters.
 */
import type { Sql } from "./pool.ts";
import type { SchemaState } from "./plan_schemas.ts";

/** Every schema of the current database but the system ones (pg_*, information_schema). */
export async function observeSchemas(sql: Sql): Promise<SchemaState[]> {
  const rows = await sql<SchemaState[]>`
    SELECT n.nspname AS name, pg_get_userbyid(n.nspowner) AS owner,
           obj_description(n.oid, 'pg_namespace') AS comment,
           shobj_description(n.nspowner, 'pg_authid') AS "ownerComment",
           pg_has_role(current_user, n.nspowner, 'USAGE') AS "ownerActable",
           EXISTS (SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                   WHERE a.grantee = 0 AND a.privilege_type = 'USAGE') AS "publicUsage",
           EXISTS (SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                   WHERE a.grantee = 0 AND a.privilege_type = 'CREATE') AS "publicCreate"
    FROM pg_namespace n
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
    ORDER BY 1`;
  return rows.map((r) => ({ ...r }));
}
