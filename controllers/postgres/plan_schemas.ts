/**
 * Schemas of a Database (spec.schemas, spec.publicSchema), planned from the schemas the database
 * holds: create what is missing with its claim in one transaction, keep the owner, release or
 * drop what left the spec, and lock down or drop `public`. Pure; refusals are TerminalErrors.
 *
 * A schema's claim is its comment: `dbtether:Schema/<ns>/<Database>` (deletionPolicy Retain) or
 * `dbtether:SchemaDelete/<ns>/<Database>` (Delete). The policy rides in the claim so that an
 * entry removed from the spec is still dropped or released as it was declared, with no state
 * kept anywhere else.
 */
import { TerminalError } from "../../lib/errors.ts";
import type {
  AdoptionConsent,
  PublicSchemaMode,
  SchemaDeletionPolicy,
  SchemaOwnerLevel,
  SchemaOwnerUser,
  SchemaSpec,
} from "./claims.ts";
import { refuse, requireConsent } from "./claims.ts";
import { databaseRoles, formatMarker, type Marker, parseMarker, sameMarker } from "./names.ts";
import { catalogIdent, ident, identifierProblem, literal } from "./quote.ts";
import * as st from "./statements.ts";
import type { Statement } from "./statements.ts";

export type {
  PublicSchemaMode,
  SchemaDeletionPolicy,
  SchemaOwnerLevel,
  SchemaOwnerUser,
  SchemaSpec,
};

/** A schema as the catalog shows it (catalog_schemas.ts). */
export interface SchemaState {
  name: string;
  owner: string;
  comment: string | null;
  /** The admin has the owner's privileges (pg_has_role USAGE), so may alter or drop it. */
  ownerActable: boolean;
  /** The owner role's comment: a dbtether marker when dbtether created it. */
  ownerComment: string | null;
  /** PUBLIC holds USAGE on it. */
  publicUsage: boolean;
  /** PUBLIC holds CREATE on it. */
  publicCreate: boolean;
}

/** What the schema planner needs to know about the Database. */
export interface SchemasSpec {
  database: string;
  marker: Marker;
  schemas: readonly SchemaSpec[];
  publicSchema: PublicSchemaMode;
  forceAdopt: boolean;
  consent?: AdoptionConsent | undefined;
  /** The roles of the DatabaseUsers named as owners, as observed; a missing one does not exist. */
  ownerRoles?: ReadonlyMap<string, OwnerRoleState>;
  /** The admin role, granted a user's role it must act for (CREATE SCHEMA ... AUTHORIZATION). */
  admin?: string;
}

/** A DatabaseUser's role as the catalog shows it. */
export interface OwnerRoleState {
  comment: string | null;
  /** The admin has its privileges (pg_has_role USAGE). */
  adminHas: boolean;
}

/** What {@link planSchemas} returns. */
export interface SchemasPlan {
  ensure: Statement[];
  remove: Statement[];
  /** Declared schemas left as they are until their DatabaseUser owner can own them. */
  waiting: SchemaWait[];
  /** The DatabaseUsers' roles that own a declared schema (they create objects there). */
  owners: string[];
}

/** A declared schema that waits for its owner: neither created nor re-owned meanwhile. */
export interface SchemaWait {
  schema: string;
  user: string;
  message: string;
}

const KIND_OF: Record<SchemaDeletionPolicy, string> = {
  Retain: "Schema",
  Delete: "SchemaDelete",
};

/** The claim a schema of `marker`'s Database carries for `policy`. */
export function schemaMarker(marker: Marker, policy: SchemaDeletionPolicy): Marker {
  return { kind: KIND_OF[policy], namespace: marker.namespace, name: marker.name };
}

function claimOf(comment: string | null): Marker | undefined {
  const m = parseMarker(comment);
  return m?.kind === "Schema" || m?.kind === "SchemaDelete" ? m : undefined;
}

function sameOwner(a: Marker, b: Marker): boolean {
  return a.namespace === b.namespace && a.name === b.name;
}

/** Why `name` cannot be a declared schema, or undefined. Admission checks the same. */
export function schemaNameProblem(name: string): string | undefined {
  if (name === "public" || name === "information_schema") return "is a system schema";
  if (name.toLowerCase().startsWith("pg_")) return `must not start with "pg_" (reserved)`;
  const problem = identifierProblem(name);
  // The reserved list of database and role names does not apply to schemas.
  return problem === "is reserved" ? undefined : problem;
}

/**
 * The role that owns `s`, or why it cannot yet. A DatabaseUser's role must exist and carry that
 * user's marker: the spec names a user, and only the role dbtether made for it may be the owner
 * (never a role of another namespace, or one a tenant merely named).
 */
function ownerOf(spec: SchemasSpec, s: SchemaSpec): { role: string } | SchemaWait {
  const o = s.owner;
  if (typeof o === "string") return { role: databaseRoles(spec.database)[o] };
  if (o.kind === "waiting") return { schema: s.name, user: o.user, message: o.message };
  const state = spec.ownerRoles?.get(o.role);
  const who = `DatabaseUser ${show(o.user)}`;
  const wait = (why: string) => ({
    schema: s.name,
    user: o.user,
    message: `Schema ${show(s.name)} waits for its owner, ${who}: ${why}`,
  });
  if (!state) return wait(`its role ${show(o.role)} does not exist yet`);
  if (!sameMarker(parseMarker(state.comment), o.marker)) {
    return wait(`role ${show(o.role)} was not created by dbtether for this DatabaseUser`);
  }
  return { role: o.role };
}

/**
 * Statements that converge the declared schemas and `public`, in the database itself: `ensure`
 * runs before the grants of the database (so a new schema gets them in the same reconcile),
 * `remove` after them, so a drop the server refuses (the schema is not empty) holds back
 * nothing else.
 */
export function planSchemas(
  spec: SchemasSpec,
  have: readonly SchemaState[],
): SchemasPlan {
  const byName = new Map(have.map((s) => [s.name, s]));
  const out: Statement[] = [];
  const waiting: SchemaWait[] = [];
  const granted = new Set<string>();
  const inDb = (sql: string, together?: string[]): Statement => ({
    sql,
    database: spec.database,
    ...(together ? { together } : {}),
  });
  for (const s of spec.schemas) {
    const problem = schemaNameProblem(s.name);
    if (problem) {
      throw new TerminalError("InvalidName", `Cannot use schema ${show(s.name)}: it ${problem}`);
    }
    const resolved = ownerOf(spec, s);
    if ("message" in resolved) {
      waiting.push(resolved);
      continue;
    }
    const q = ident(s.name);
    const owner = ident(resolved.role);
    // CREATE SCHEMA ... AUTHORIZATION and ALTER SCHEMA ... OWNER need SET on the new owner.
    const user = spec.ownerRoles?.get(resolved.role);
    if (user && !granted.has(resolved.role)) {
      granted.add(resolved.role);
      if (!user.adminHas && spec.admin) out.push({ sql: st.grantRole(owner, ident(spec.admin)) });
    }
    const comment = literal(formatMarker(schemaMarker(spec.marker, s.deletionPolicy)));
    const state = byName.get(s.name);
    if (!state) {
      // One transaction: a schema without its claim would be refused by every later reconcile.
      out.push(inDb(st.createSchema(q, owner), [st.commentOnSchema(q, comment)]));
      continue;
    }
    const claim = claimOf(state.comment);
    const ours = claim !== undefined && sameOwner(claim, spec.marker);
    if (!ours) checkAdoption(spec, s.name, state, claim);
    if (state.owner !== resolved.role) {
      out.push(inDb(st.alterSchemaOwner(q, owner)));
    }
    if (!ours || claim.kind !== KIND_OF[s.deletionPolicy]) {
      out.push(inDb(st.commentOnSchema(q, comment)));
    }
  }
  return {
    ensure: out,
    remove: [...planPublic(spec, byName.get("public")), ...planRemoved(spec, have)],
    waiting,
    owners: [...granted],
  };
}

/** An existing schema nobody (or another Database) claims: only with consent, never across. */
function checkAdoption(
  spec: SchemasSpec,
  name: string,
  state: SchemaState,
  claim: Marker | undefined,
): void {
  const what = `schema ${show(name)} in database ${show(spec.database)}`;
  const ask = `annotate dbtether.io/force-adopt: "true" to adopt it, which the platform team ` +
    `must allow`;
  if (claim && claim.namespace !== spec.marker.namespace) {
    refuse(
      "SchemaClaimedByOther",
      `Cannot claim ${what}: it belongs to ${formatMarker(claim)} in another namespace`,
    );
  }
  const ownerClaim = parseMarker(state.ownerComment);
  if (ownerClaim && ownerClaim.namespace !== spec.marker.namespace) {
    refuse(
      "SchemaClaimedByOther",
      `Cannot claim ${what}: its owner ${show(state.owner)} belongs to ` +
        `${formatMarker(ownerClaim)} in another namespace`,
    );
  }
  if (!spec.forceAdopt) {
    refuse(
      claim ? "SchemaClaimedByOther" : "SchemaExistsUnmanaged",
      `Cannot use ${what}: it exists and ${
        claim ? `belongs to ${formatMarker(claim)}` : "was not created by dbtether"
      }; nothing was changed (${ask})`,
    );
  }
  requireConsent(spec.consent, what);
  if (!state.ownerActable) {
    refuse(
      "SchemaExistsUnmanaged",
      `Cannot adopt ${what}: its owner ${show(state.owner)} is a role whose privileges the ` +
        `admin does not have`,
    );
  }
}

function planPublic(spec: SchemasSpec, pub: SchemaState | undefined): Statement[] {
  if (!pub || spec.publicSchema === "keep") return [];
  const q = catalogIdent("public");
  const inDb = (sql: string): Statement => ({ sql, database: spec.database });
  if (!pub.ownerActable) {
    throw new TerminalError(
      "PermissionDenied",
      `Cannot ${spec.publicSchema} schema public of database ${show(spec.database)}: it is ` +
        `owned by ${show(pub.owner)}, whose privileges the admin does not have (PostgreSQL 14 ` +
        `and older: see docs/design/privileges.md#postgresql-majors)`,
    );
  }
  if (spec.publicSchema === "drop") return [inDb(st.dropSchema(q))];
  const privs: st.SchemaPrivilege[] = [];
  if (pub.publicUsage) privs.push("USAGE");
  if (pub.publicCreate) privs.push("CREATE");
  if (!privs.length) return [];
  // The readonly group may hold USAGE only through PUBLIC (the grants pass saw it as held): it
  // gets its own first, or its users would lose `public` until the next reconcile.
  const keep = pub.publicUsage
    ? [inDb(st.grantOnSchemas(["USAGE"], [q], ident(databaseRoles(spec.database).readonly)))]
    : [];
  return [...keep, inDb(st.revokeOnSchemas(privs, [q], "PUBLIC"))];
}

/** Schemas this Database claims that left the spec: dropped (RESTRICT) or released. */
function planRemoved(spec: SchemasSpec, have: readonly SchemaState[]): Statement[] {
  const declared = new Set(spec.schemas.map((s) => s.name));
  const out: Statement[] = [];
  const releases: Statement[] = [];
  for (const s of have) {
    const claim = claimOf(s.comment);
    if (!claim || !sameOwner(claim, spec.marker) || declared.has(s.name)) continue;
    const q = catalogIdent(s.name);
    if (claim.kind === "SchemaDelete") {
      out.push({ sql: st.dropSchema(q), database: spec.database });
    } else {
      releases.push({ sql: st.commentOnSchema(q, null), database: spec.database });
    }
  }
  // Drops last: one that fails (not empty) must not hold back the releases.
  return [...releases, ...out];
}

function show(s: string): string {
  return JSON.stringify(s);
}
