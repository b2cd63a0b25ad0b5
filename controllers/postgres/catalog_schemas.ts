/**
 * The schemas of the current database as the schema planner (plan_schemas.ts) sees them: owner,
 * claim, and what PUBLIC may do there; and what the groups of the declared schemas hold
 * (plan_schema_grants.ts). Read-only, bind parameters only.
 */
import type { Sql } from "./pool.ts";
import type { SchemaState } from "./plan_schemas.ts";
import type { SchemaDefaultAcl, SchemaGrantState } from "./plan_schema_grants.ts";
import { observeRelations } from "./catalog.ts";
import { observeFunctionGrants } from "./catalog_functions.ts";
import { schemaRoles } from "./names.ts";

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

/** What the groups of each of `schemas` hold in the current database (missing ones left out). */
export async function observeSchemaGrants(
  sql: Sql,
  o: { database: string; schemas: readonly string[] },
): Promise<SchemaGrantState[]> {
  const out: SchemaGrantState[] = [];
  for (const schema of o.schemas) {
    const roles = schemaRoles(o.database, schema);
    const [row] = await sql<{ readonlyUsage: boolean; adminCreate: boolean }[]>`
      SELECT has_schema_privilege(${roles.readonly}, n.oid, 'USAGE') AS "readonlyUsage",
             has_schema_privilege(${roles.admin}, n.oid, 'CREATE') AS "adminCreate"
      FROM pg_namespace n WHERE n.nspname = ${schema}`;
    if (!row) continue;
    const relations = await observeRelations(sql, roles, schema);
    out.push({
      schema,
      readonlyUsage: row.readonlyUsage,
      adminCreate: row.adminCreate,
      relations: relations.map(({ schema: _, ...r }) => r),
      functions: await observeFunctionGrants(sql, roles.readonly, schema),
      defaultAcls: await observeSchemaDefaultAcls(sql, schema),
    });
  }
  return out;
}

/** Default privileges given IN SCHEMA `schema` of the current database. */
export async function observeSchemaDefaultAcls(
  sql: Sql,
  schema: string,
): Promise<SchemaDefaultAcl[]> {
  const rows = await sql<SchemaDefaultAcl[]>`
    SELECT pg_get_userbyid(d.defaclrole) AS "forRole", d.defaclobjtype::text AS objects,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee,
           a.privilege_type AS privilege
    FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace,
         aclexplode(d.defaclacl) a
    WHERE n.nspname = ${schema}`;
  return rows.map((r) => ({ ...r }));
}

/** The schemas of the current database where `role` has default privileges of its own. */
export async function schemasWithDefaultsOf(sql: Sql, role: string): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    SELECT DISTINCT n.nspname AS name FROM pg_default_acl d
    JOIN pg_namespace n ON n.oid = d.defaclnamespace
    WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = ${role}) ORDER BY 1`;
  return rows.map((r) => r.name);
}

/** NOLOGIN roles whose comment is exactly `marker` (a Database's groups, schemas' included). */
export async function rolesMarked(sql: Sql, marker: string): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    SELECT rolname AS name FROM pg_roles
    WHERE NOT rolcanlogin AND shobj_description(oid, 'pg_authid') = ${marker} ORDER BY 1`;
  return rows.map((r) => r.name);
}
