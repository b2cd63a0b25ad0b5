/**
 * What a DatabaseUser's spec says about its Databases and its role name, whichever form it was
 * written in: shared by the DatabaseUser controller and the Database controller (a schema's owner
 * may be a DatabaseUser, which must name the Database).
 */
import type {
  DatabaseUser,
  PrivilegeLevel,
  SchemaPrivilegeLevel,
} from "../../crds/database_user.ts";

/** One Database entry of the spec, whichever form it was written in. */
export interface DatabaseEntry {
  name: string;
  namespace: string;
  /** "none": only the schemas' privileges (an entry with schemas and without privileges). */
  level: PrivilegeLevel | "none";
  schemas?: readonly { name: string; level: SchemaPrivilegeLevel }[];
  /** `settings` of the entry: the role's settings in this database. */
  settings?: Readonly<Record<string, string>>;
}

/** The entries of `databaseRef`, `database` or `databases`, with defaults applied. */
export function databaseEntries(user: DatabaseUser): DatabaseEntry[] {
  const s = user.spec;
  const ns = user.metadata.namespace ?? "default";
  const list = s.databaseRef
    ? [{ name: s.databaseRef.name, namespace: s.databaseRef.namespace }]
    : s.database
    ? [s.database]
    : s.databases ?? [];
  return list.map((e) => {
    const schemas = "schemas" in e && e.schemas?.length
      ? e.schemas.map((x) => ({ name: x.name, level: x.privileges }))
      : undefined;
    const own = "privileges" in e ? e.privileges : undefined;
    const settings = "settings" in e ? e.settings : undefined;
    return {
      name: e.name,
      namespace: e.namespace ?? ns,
      level: own ?? (schemas ? "none" : s.privileges),
      ...(schemas ? { schemas } : {}),
      ...(settings ? { settings } : {}),
    };
  });
}

/** The role name: spec.username, else metadata.name exactly. */
export function usernameOf(user: DatabaseUser): string {
  return user.spec.username ?? user.metadata.name;
}
