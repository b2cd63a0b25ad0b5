/**
 * The per-schema part of a login role's plan (plan_user.ts): default privileges IN SCHEMA for
 * what it creates where it is admin, and its search_path in each database with schemas. Pure.
 *
 * The search_path is dbtether's in a database where the user has schemas (a value changed by
 * hand there is put back) and nowhere else. When the schemas go, it is reset only if every name
 * it lists is a schema the user still belongs to through dbtether's schema groups (the snapshot
 * is read before this pass revokes them): that value is one dbtether set; any other (set by hand
 * or by the platform team on a user without schemas) is left as it is.
 */
import type { Membership } from "./catalog.ts";
import { schemaRoles } from "./names.ts";
import { planSchemaDefaults, type SchemaDefaultAcl } from "./plan_schema_grants.ts";
import { catalogIdent, ident } from "./quote.ts";
import * as st from "./statements.ts";

/** One database of a user, as far as its schemas go. */
export interface UserSchemas {
  name: string;
  schemas?: readonly { name: string; level: "readonly" | "readwrite" | "admin" }[];
  /** Schemas of the database the user's role owns (Database spec.schemas[].owner). */
  ownedSchemas?: readonly string[];
}

/** The schemas of `db` where the user may create (its objects there are its own). */
export function adminSchemas(db: UserSchemas): string[] {
  const admin = (db.schemas ?? []).filter((s) => s.level === "admin").map((s) => s.name);
  return [...new Set([...admin, ...db.ownedSchemas ?? []])];
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
/**
 * PostgreSQL reads a search_path entry `$user` as the session's role name, quoted or not, so a
 * schema of that name cannot be on one: it is left out (its privileges still apply).
 */
const USER_PLACEHOLDER = "$user";

/** The schemas a user's search_path in `db` lists, in the order of the spec. */
function searchPathOf(db: UserSchemas): string[] {
  return (db.schemas ?? []).map((s) => s.name).filter((n) => n !== USER_PLACEHOLDER);
}

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

/**
 * Before the memberships are revoked (a failed pass then still sees them): `RESET search_path`
 * where the user has no schemas any more and the value lists only schemas whose groups it is a
 * member of, in the database's catalog spelling.
 */
export function planSearchPathResets(
  spec: { username: string; databases: readonly UserSchemas[] },
  o: { settings: Map<string, Map<string, string>>; memberships: readonly Membership[] },
): string[] {
  const groups = new Set(
    o.memberships.filter((m) => m.member === spec.username).map((m) => m.role),
  );
  const member = (db: string, schema: string) =>
    Object.values(schemaRoles(db, schema)).some((r) => groups.has(r));
  const out: string[] = [];
  for (const [db, kv] of o.settings) {
    const have = kv.get(SEARCH_PATH);
    if (db === "" || have === undefined) continue;
    if (spec.databases.some((d) => d.name === db && searchPathOf(d).length > 0)) continue;
    const names = parseSearchPath(have);
    if (!names.length || !names.every((n) => member(db, n))) continue;
    out.push(
      st.resetRoleConfig(ident(spec.username), {
        database: catalogIdent(db),
        setting: SEARCH_PATH,
      }),
    );
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
    const want = searchPathOf(d);
    if (!want.length) continue;
    const have = settings.get(d.name)?.get(SEARCH_PATH);
    if (have !== undefined && JSON.stringify(parseSearchPath(have)) === JSON.stringify(want)) {
      continue;
    }
    out.push(st.setRoleSearchPath(u, { database: ident(d.name), schemas: want.map(ident) }));
  }
  return out;
}
