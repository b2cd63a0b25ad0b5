/**
 * Deterministic names of the roles dbtether creates, and the ownership markers it writes into
 * comments. Deterministic so a retry finds what an interrupted attempt made.
 */
import { createHash } from "node:crypto";
import { MAX_IDENTIFIER_BYTES, utf8Length } from "./quote.ts";

/** Privilege levels of a DatabaseUser in one database. */
export type PrivilegeLevel = "readonly" | "readwrite" | "admin" | "owner";
export const PRIVILEGE_LEVELS: readonly PrivilegeLevel[] = [
  "readonly",
  "readwrite",
  "admin",
  "owner",
];

/** The NOLOGIN roles of one database: its owner and the three group roles. */
export interface DatabaseRoles {
  owner: string;
  readonly: string;
  readwrite: string;
  admin: string;
}

/** `s` cut to at most `bytes` UTF-8 bytes without splitting a character. */
export function truncateBytes(s: string, bytes: number): string {
  let out = "";
  let used = 0;
  for (const ch of s) {
    const n = utf8Length(ch);
    if (used + n > bytes) break;
    out += ch;
    used += n;
  }
  return out;
}

/**
 * `base + suffix` when it fits in 63 bytes; otherwise `base` truncated, `_`, 8 hex digits of a
 * hash of the full base, then the suffix. Different long bases give different names.
 */
export function boundedName(base: string, suffix = ""): string {
  if (utf8Length(base) + utf8Length(suffix) <= MAX_IDENTIFIER_BYTES) return base + suffix;
  const hash = createHash("sha256").update(base).digest("hex").slice(0, 8);
  const room = MAX_IDENTIFIER_BYTES - utf8Length(suffix) - 9;
  return `${truncateBytes(base, room)}_${hash}${suffix}`;
}

/** Role names for database `database`: `<db>_owner`, `<db>_readonly`, `<db>_readwrite`, `<db>_admin`. */
export function databaseRoles(database: string): DatabaseRoles {
  return {
    owner: boundedName(database, "_owner"),
    readonly: boundedName(database, "_readonly"),
    readwrite: boundedName(database, "_readwrite"),
    admin: boundedName(database, "_admin"),
  };
}

/** The group roles of one schema of a database (Database.spec.schemas). */
export interface SchemaRoles {
  readonly: string;
  readwrite: string;
  admin: string;
}

/**
 * Role names for schema `schema` of database `database`: `<db>.<schema>_readonly`, ...; the dot
 * keeps them apart from the database's own `<db>_readonly`. A name that another Database's
 * roles could also produce (database `a.b` against database `a`, schema `b`) is refused by the
 * role's claim, never shared.
 */
export function schemaRoles(database: string, schema: string): SchemaRoles {
  const base = `${database}.${schema}`;
  return {
    readonly: boundedName(base, "_readonly"),
    readwrite: boundedName(base, "_readwrite"),
    admin: boundedName(base, "_admin"),
  };
}

/** The second login role of the Alternating rotation strategy. */
export function alternateUserName(username: string): string {
  return boundedName(username, "_b");
}

/**
 * Who a database or role belongs to. Databases use dbtether's format `dbtether:<ns>/<name>`;
 * roles add the kind (`dbtether:DatabaseUser/<ns>/<name>`), so a user's role can never be
 * mistaken for a role of a Database with the same name.
 */
export interface Marker {
  kind?: string;
  namespace: string;
  name: string;
}

const PREFIX = "dbtether:";

export function formatMarker(m: Marker): string {
  return m.kind === undefined
    ? `${PREFIX}${m.namespace}/${m.name}`
    : `${PREFIX}${m.kind}/${m.namespace}/${m.name}`;
}

/** The marker in a comment, or undefined for a comment dbtether did not write (or none). */
export function parseMarker(comment: string | null | undefined): Marker | undefined {
  if (!comment?.startsWith(PREFIX)) return undefined;
  const parts = comment.slice(PREFIX.length).split("/");
  if (parts.some((p) => p === "")) return undefined;
  if (parts.length === 2) return { namespace: parts[0]!, name: parts[1]! };
  if (parts.length === 3) return { kind: parts[0]!, namespace: parts[1]!, name: parts[2]! };
  return undefined;
}

/** Whether two markers name the same resource. */
export function sameMarker(a: Marker | undefined, b: Marker): boolean {
  return a !== undefined && a.kind === b.kind && a.namespace === b.namespace && a.name === b.name;
}
