/**
 * The only place where names and literals become SQL text. Statement builders accept only the
 * branded {@link Ident} and {@link Literal} types, so an unquoted string cannot reach the server.
 *
 * postgres.js can quote identifiers (`sql(name)`), but it splits on dots (`"a"."b"`), so names
 * with dots would silently change meaning; we quote ourselves.
 */
import { MAX_IDENTIFIER_BYTES, RESERVED_NAMES, RESERVED_PREFIXES } from "./limits.ts";
import { TerminalError } from "../../lib/errors.ts";

declare const identBrand: unique symbol;
declare const literalBrand: unique symbol;

/** A double-quoted SQL identifier, safe to splice into a statement. */
export type Ident = string & { readonly [identBrand]: true };
/** A single-quoted SQL string literal, safe to splice into a statement. */
export type Literal = string & { readonly [literalBrand]: true };

/** PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated by the server. */
export { MAX_IDENTIFIER_BYTES } from "./limits.ts";

/**
 * Names a user may not choose for a database or role, and prefixes reserved by PostgreSQL
 * (`pg_`) and RDS (`rds_`); compared case-insensitively. One list with the CRDs' admission
 * rules, so admission and the SQL module never disagree.
 */
export { RESERVED_NAMES, RESERVED_PREFIXES } from "./limits.ts";

/** A name that cannot be used; retrying does not help until the spec changes. */
export class InvalidIdentifierError extends TerminalError {
  override name = "InvalidIdentifierError";
  constructor(message: string) {
    super("InvalidName", message);
  }
}

const encoder = new TextEncoder();

/** Byte length of `s` in UTF-8, as PostgreSQL counts it. */
export function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

// A lone surrogate cannot be encoded as UTF-8; TextEncoder would turn it into U+FFFD and the
// server would store a different name than the one asked for.
function hasLoneSurrogate(s: string): boolean {
  return !s.isWellFormed();
}

// Control characters (NUL included) are never sensible in a name and break log lines.
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why `name` cannot be an identifier at all (structure only), or undefined when it can. */
export function structuralProblem(name: string): string | undefined {
  if (name.length === 0) return "must not be empty";
  if (hasLoneSurrogate(name)) return "is not valid UTF-8";
  if (CONTROL.test(name)) return "must not contain control characters";
  const bytes = utf8Length(name);
  if (bytes > MAX_IDENTIFIER_BYTES) {
    return `is ${bytes} bytes long, the limit is ${MAX_IDENTIFIER_BYTES}`;
  }
  return undefined;
}

/** Options of {@link identifierProblem} and {@link userIdent}. */
export interface IdentifierOptions {
  /** The server's admin role: a user must not be able to name (and so alter) it. */
  adminRole?: string;
}

/**
 * Why `name` cannot be a database or role name chosen by a user, or undefined when it can.
 * Structural rules plus reserved names.
 */
export function identifierProblem(name: string, opts: IdentifierOptions = {}): string | undefined {
  const structural = structuralProblem(name);
  if (structural) return structural;
  const lower = name.toLowerCase();
  if ((RESERVED_NAMES as readonly string[]).includes(lower)) return "is reserved";
  const prefix = RESERVED_PREFIXES.find((p) => lower.startsWith(p));
  if (prefix) return `must not start with "${prefix}" (reserved)`;
  if (opts.adminRole !== undefined && lower === opts.adminRole.toLowerCase()) {
    return "is the server's admin role";
  }
  return undefined;
}

function quote(name: string): Ident {
  return `"${name.replaceAll('"', '""')}"` as Ident;
}

/**
 * Quotes a name dbtether derived itself or a system name (`public`, the admin role): checks the
 * structure but not the reserved list.
 */
export function ident(name: string): Ident {
  const problem = structuralProblem(name);
  if (problem) throw new InvalidIdentifierError(`Invalid identifier ${show(name)}: ${problem}`);
  return quote(name);
}

/**
 * Quotes a name the server itself returned from its catalog (a table, schema or role that
 * exists). PostgreSQL allows every character but NUL in a quoted identifier, and doubling the
 * quotes is exact for all of them, so control characters are quoted rather than refused: a
 * table named "a\nb" must not stop dbtether from granting on the others. Our logs escape such
 * characters (JSON), so they cannot forge log lines.
 */
export function catalogIdent(name: string): Ident {
  if (name.length === 0 || name.includes("\0") || hasLoneSurrogate(name)) {
    throw new InvalidIdentifierError(`Invalid identifier from the catalog ${show(name)}`);
  }
  return quote(name);
}

/** Quotes a database or role name that came from a user's spec: all rules apply. */
export function userIdent(name: string, opts: IdentifierOptions = {}): Ident {
  const problem = identifierProblem(name, opts);
  if (problem) throw new InvalidIdentifierError(`Invalid name ${show(name)}: ${problem}`);
  return quote(name);
}

/** `schema.name` from two quoted parts. */
export function qualified(schema: Ident, name: Ident): Ident {
  return `${schema}.${name}` as Ident;
}

/**
 * Parses a table reference from a spec: `table`, `schema.table`, or either part double-quoted
 * (`"my.schema"."my table"`) when it contains a dot. Returns the raw parts.
 */
export function parseTableName(ref: string): { schema?: string; name: string } {
  const parts: string[] = [];
  let i = 0;
  while (i <= ref.length) {
    let part = "";
    if (ref[i] === '"') {
      i++;
      for (;;) {
        if (i >= ref.length) {
          throw new InvalidIdentifierError(`Invalid table ${show(ref)}: unclosed quote`);
        }
        if (ref[i] === '"' && ref[i + 1] === '"') {
          part += '"';
          i += 2;
        } else if (ref[i] === '"') {
          i++;
          break;
        } else part += ref[i++];
      }
    } else {
      while (i < ref.length && ref[i] !== ".") part += ref[i++];
    }
    parts.push(part);
    if (i >= ref.length) break;
    if (ref[i] !== ".") {
      throw new InvalidIdentifierError(`Invalid table ${show(ref)}: expected "."`);
    }
    i++;
  }
  if (parts.length > 2 || parts.some((p) => p === "")) {
    throw new InvalidIdentifierError(`Invalid table ${show(ref)}: use "table" or "schema.table"`);
  }
  const [first, second] = parts as [string, string | undefined];
  return second === undefined ? { name: first } : { schema: first, name: second };
}

/**
 * Quotes a string literal for the few places that take no bind parameters (COMMENT, PASSWORD,
 * SET values). Like PostgreSQL's quote_literal: E'' with doubled backslashes when there is a
 * backslash, so the result means the same whatever `standard_conforming_strings` says.
 */
export function literal(value: string): Literal {
  if (value.includes("\0")) throw new InvalidIdentifierError("Invalid literal: contains NUL");
  if (hasLoneSurrogate(value)) throw new InvalidIdentifierError("Invalid literal: not valid UTF-8");
  const body = value.replaceAll("'", "''");
  if (value.includes("\\")) return `E'${body.replaceAll("\\", "\\\\")}'` as Literal;
  return `'${body}'` as Literal;
}

// Names in messages: JSON quoting shows quotes, control characters and spaces unambiguously.
function show(name: string): string {
  const s = name.length > 80 ? `${name.slice(0, 80)}...` : name;
  return JSON.stringify(s);
}
