/**
 * Who may take over what already exists on a server, pure: the claim markers of databases and
 * roles, the adoption annotations, the platform team's consent (DBCluster spec.adoption) and the
 * rules of adoption.ts. Refusals are TerminalErrors with a reason from {@link RefusalReason}.
 */
import { RetryableError, TerminalError } from "../../lib/errors.ts";
import { ROLE_ADOPTION_REFUSALS, roleAdoptionProblem } from "./adoption.ts";
import { serverCapabilities } from "./capabilities.ts";
import type { ServerSnapshot } from "./catalog.ts";
import { databaseRoles, formatMarker, type Marker, parseMarker, sameMarker } from "./names.ts";
import { ident, literal } from "./quote.ts";

/** The roles of a database that may own one of its schemas. */
export type SchemaOwnerLevel = "owner" | "admin" | "readwrite" | "readonly";
/** What happens to a schema when its entry leaves the spec. */
export type SchemaDeletionPolicy = "Retain" | "Delete";
/** What dbtether does with `public`. */
export type PublicSchemaMode = "keep" | "lockdown" | "drop";

/**
 * A DatabaseUser as a schema's owner, as the Database planner resolved it: its role, which must
 * carry `marker` on the server, or why it cannot own the schema yet (`waiting`).
 */
export type SchemaOwnerUser =
  | { kind: "user"; user: string; role: string; marker: Marker }
  | { kind: "waiting"; user: string; message: string };

/** One declared schema. */
export interface SchemaSpec {
  name: string;
  owner: SchemaOwnerLevel | SchemaOwnerUser;
  deletionPolicy: SchemaDeletionPolicy;
}

/** What a Database resource wants on the server. */
export interface DatabaseSpec {
  database: string;
  /** Marker of the resource (`dbtether:<ns>/<name>`); its roles get the kind `Database`. */
  marker: Marker;
  revokePublicConnect: boolean;
  extensions?: readonly string[];
  /**
   * The adoption annotation is set: take over an existing database that no resource claims, or
   * one claimed by another resource of the same namespace, with its roles. Needs `consent`.
   */
  forceAdopt?: boolean;
  /** The platform team's consent; absent means not granted. */
  consent?: AdoptionConsent;
  /** The annotation that asks for adoption, for messages; default dbtether.io/force-adopt. */
  adoptAnnotation?: string;
  /** spec.schemas (plan_schemas.ts); none when unset. */
  schemas?: readonly SchemaSpec[];
  /** spec.publicSchema; default keep. */
  publicSchema?: PublicSchemaMode;
  /** How a new database is created, and its connection limit. */
  options?: DatabaseOptions;
}

/**
 * Database options of the spec. The creation options (template to icuLocale) are used only by
 * CREATE DATABASE; the connection limit is also kept in line afterwards. Unset ones are left
 * to the server.
 */
export interface DatabaseOptions {
  template?: "template0" | "template1";
  encoding?: string;
  locale?: string;
  lcCollate?: string;
  lcCtype?: string;
  localeProvider?: "libc" | "icu" | "builtin";
  icuLocale?: string;
  /** Creation only; the Database planner checked the DBCluster's consent. */
  tablespace?: string;
  connectionLimit?: number;
  /** Kept in line; the Database planner checked the DBCluster's consent for true. */
  isTemplate?: boolean;
  /** Kept in line; false also skips everything inside the database. */
  allowConnections?: boolean;
}

import * as st from "./statements.ts";

/** Reasons of refusals, declared once. */
export const REFUSAL_REASONS = [
  "DatabaseClaimedByOther",
  "DatabaseExistsUnmanaged",
  "AdoptionNotAllowed",
  "RoleExistsUnmanaged",
  "RoleClaimedByOther",
  "RoleIsDatabaseRole",
  "OwnerExists",
  "SchemaExistsUnmanaged",
  "SchemaClaimedByOther",
  "DatabaseOptionUnsupported",
  "TablespaceNotAllowed",
  "TemplateNotAllowed",
  "RoleNotGrantable",
  "SettingNotAllowed",
  ...ROLE_ADOPTION_REFUSALS,
] as const;
/** A reason of {@link REFUSAL_REASONS}. */
export type RefusalReason = typeof REFUSAL_REASONS[number];
export type WaitReason = "DatabaseNotReady";

/** Take over an existing database (and its roles): the Database's adoption annotation. */
export const FORCE_ADOPT_ANNOTATION = "dbtether.io/force-adopt";
/** Take over an existing role (DatabaseUser, PostgresDatabase). */
export const ADOPT_ANNOTATION = "dbtether.io/adopt";

/**
 * The platform team's answer to adoption for the resource's namespace (DBCluster
 * `spec.adoption.allowedNamespaces`). Without it nothing that exists is ever taken over.
 */
export interface AdoptionConsent {
  granted: boolean;
  /** What the platform team would change to grant it, for messages. */
  how: string;
}

export function roleMarkerOf(m: Marker, kind: string): Marker {
  return { kind, namespace: m.namespace, name: m.name };
}

export function refuse(reason: RefusalReason, message: string): never {
  throw new TerminalError(reason, message);
}

/** Refuses with AdoptionNotAllowed unless the platform team consents. */
export function requireConsent(consent: AdoptionConsent | undefined, what: string): void {
  if (consent?.granted) return;
  refuse(
    "AdoptionNotAllowed",
    `Cannot adopt ${what}: the platform team has not allowed this namespace to adopt existing ` +
      `roles and databases; nothing was changed (${
        consent?.how ?? "DBCluster spec.adoption.allowedNamespaces"
      })`,
  );
}

/** How an existing role may be claimed. */
export interface ClaimOptions {
  /** The marker the role carries once it is ours. */
  want: Marker;
  /** The adoption annotation is set. */
  adopt: boolean;
  consent: AdoptionConsent | undefined;
  /** The annotation that asks for adoption, for messages. */
  annotation: string;
  /** Markers of other resources that adoption may replace; none unless given. */
  replaceable?: (have: Marker) => boolean;
}

/**
 * Checks that an existing role belongs to `o.want` or may be adopted; returns the COMMENT to
 * write, if any. A role of another resource is never adopted (unless `replaceable`), and an
 * unmarked one only with the annotation, the platform team's consent, and when it can reach
 * nothing outside the namespace (adoption.ts). The snapshot must hold the role's `reach` when
 * adoption is asked and allowed.
 */
export function claimRole(role: string, snap: ServerSnapshot, o: ClaimOptions): string[] {
  const have = parseMarker(snap.roles.get(role)?.comment);
  if (sameMarker(have, o.want)) return [];
  const name = JSON.stringify(role);
  const ask = `annotate ${o.annotation}: "true" to adopt it, which the platform team must allow`;
  if (have && !(o.replaceable?.(have) ?? false)) {
    if (have.kind === "Database" && o.want.kind !== "Database") {
      refuse(
        "RoleIsDatabaseRole",
        `Cannot use role ${name}: it is the owner or a group role of ${formatMarker(have)}, ` +
          `which no user may take over (a user gets access through its privilege level)`,
      );
    }
    refuse("RoleClaimedByOther", `Cannot use role ${name}: it belongs to ${formatMarker(have)}`);
  }
  if (!o.adopt) {
    if (have) {
      refuse(
        "RoleClaimedByOther",
        `Cannot use role ${name}: it belongs to ${formatMarker(have)} (${ask})`,
      );
    }
    refuse(
      "RoleExistsUnmanaged",
      `Cannot use role ${name}: it exists and was not created by dbtether (${ask})`,
    );
  }
  requireConsent(o.consent, `role ${name}`);
  const reach = snap.reach?.get(role);
  if (!reach) throw new Error(`Cannot judge the adoption of role ${name}: its reach was not read`);
  const problem = roleAdoptionProblem(role, reach, {
    adminRole: snap.currentUser,
    namespace: o.want.namespace,
    needsAdminOption: serverCapabilities(snap.versionNum).grantNeedsAdminOption,
  });
  // The platform team's GRANT fixes AdminOptionMissing without a change of the spec: retried.
  if (problem?.reason === "AdminOptionMissing") {
    throw new RetryableError(problem.reason, problem.message);
  }
  if (problem) refuse(problem.reason, problem.message);
  return [st.commentOnRole(ident(role), literal(formatMarker(o.want)))];
}

/**
 * Whether the existing, unmarked database is one this resource created and could not mark yet:
 * CREATE DATABASE cannot share a transaction with its COMMENT, so a crash between them leaves
 * it so. The evidence: no comment at all, an ACL nobody ever changed (every converged reconcile
 * grants CONNECT, so a database that was ours and later released never looks like this), and
 * owned by this resource's owner role, which only an admin could arrange otherwise.
 */
export function createdByUs(
  database: string,
  marker: Marker,
  snap: Pick<ServerSnapshot, "database" | "roles">,
): boolean {
  const db = snap.database;
  const owner = databaseRoles(database).owner;
  return db !== undefined && db.comment === null && db.aclDefault && db.owner === owner &&
    sameMarker(parseMarker(snap.roles.get(owner)?.comment), roleMarkerOf(marker, "Database"));
}

/** Refuses unless the existing database is ours, or may be adopted (annotation, consent). */
export function checkDatabaseClaim(spec: DatabaseSpec, snap: ServerSnapshot): void {
  const info = snap.database;
  const claim = parseMarker(info?.comment);
  if (!info || sameMarker(claim, spec.marker) || createdByUs(spec.database, spec.marker, snap)) {
    return;
  }
  const name = JSON.stringify(spec.database);
  const annotation = spec.adoptAnnotation ?? FORCE_ADOPT_ANNOTATION;
  if (claim && claim.namespace !== spec.marker.namespace) {
    refuse(
      "DatabaseClaimedByOther",
      `Cannot claim database ${name}: it belongs to ${formatMarker(claim)} in another ` +
        `namespace; a claim never moves between namespaces, whatever the annotations`,
    );
  }
  if (spec.forceAdopt !== true) {
    if (claim) {
      refuse(
        "DatabaseClaimedByOther",
        `Cannot claim database ${name}: it belongs to ${formatMarker(claim)} (annotate ` +
          `${annotation}: "true" to take it over, which the platform team must allow)`,
      );
    }
    refuse(
      "DatabaseExistsUnmanaged",
      `Cannot use database ${name}: it exists and was not created by dbtether; nothing was ` +
        `changed (annotate ${annotation}: "true" to adopt it, which the platform team must allow)`,
    );
  }
  requireConsent(spec.consent, `database ${name}`);
}
