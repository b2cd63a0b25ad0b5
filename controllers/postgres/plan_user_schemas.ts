/**
 * The per-schema part of a login role's plan (plan_user.ts): default privileges IN SCHEMA for
 * what it creates where it is admin, and its search_path in each database with schemas. Pure.
 */
import { schemaRoles } from "./names.ts";
import { planSchemaDefaults, type SchemaDefaultAcl } from "./plan_schema_grants.ts";
import { ident } from "./quote.ts";
import * as st from "./statements.ts";

/** One database of a user, as far as its schemas go. */
export interface UserSchemas {
  name: string;
  schemas?: readonly { name: string; level: "readonly" | "readwrite" | "admin" }[];
}

/** The schemas of `db` where the user may create (its objects there are its own). */
export function adminSchemas(db: UserSchemas): string[] {
  return (db.schemas ?? []).filter((s) => s.level === "admin").map((s) => s.name);
}

/**
 * What a user that may create in a schema (admin there) makes is its own: `ALTER DEFAULT
 * PRIVILEGES FOR ROLE u IN SCHEMA s` gives the schema's groups access to it (the database's
 * groups get theirs from the fallback defaults of planDefaults). Where it is no longer admin,
 * those defaults are revoked.
 */
export function planUserSchemaDefaults(
  user: string,
  o: {
    db: UserSchemas;
    schemaDefaults: readonly { schema: string; acls: readonly SchemaDefaultAcl[] }[];
  },
): string[] {
  const own = new Set(adminSchemas(o.db));
  const out: string[] = [];
  for (const { schema, acls } of o.schemaDefaults) {
    const groups = schemaRoles(o.db.name, schema);
    out.push(...planSchemaDefaults(user, {
      schema,
      grantees: groups,
      acls,
      action: own.has(schema) ? "GRANT" : "REVOKE",
    }));
  }
  return out;
}

const SEARCH_PATH = "search_path";

/** The names of a stored search_path value (`a, "b""c"`), unquoted. */
export function parseSearchPath(value: string): string[] {
  const out: string[] = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^,]*?))\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < value.length && (m = re.exec(value)) !== null) {
    out.push(m[1] !== undefined ? m[1].replaceAll('""', '"') : m[2]!);
  }
  return out;
}

/** Per database with schemas: `search_path` set to them, in the order of the spec. */
export function planSearchPaths(
  spec: { username: string; databases: readonly UserSchemas[] },
  settings: Map<string, Map<string, string>>,
): string[] {
  const u = ident(spec.username);
  const out: string[] = [];
  for (const d of spec.databases) {
    const want = (d.schemas ?? []).map((s) => s.name);
    if (!want.length) continue;
    const have = settings.get(d.name)?.get(SEARCH_PATH);
    if (have !== undefined && JSON.stringify(parseSearchPath(have)) === JSON.stringify(want)) {
      continue;
    }
    out.push(st.setRoleSearchPath(u, { database: ident(d.name), schemas: want.map(ident) }));
  }
  return out;
}
