/**
 * What the spec of a DatabaseUser says, read and checked without I/O: the databases it names
 * (whichever form it was written in) and whether each may be used, the role name, the one
 * DBCluster they share, and names it may not use. Pure; the checks throw the domain errors the
 * planner (plan.ts) turns into a blocked reason.
 */
import type { Database } from "../../crds/database.ts";
import type { DatabaseUser, UserAuthenticationType } from "../../crds/database_user.ts";
import { DatabaseUserKind } from "../../crds/database_user.ts";
import type { OwnerReference } from "../runtime/types.ts";
import { getCondition, isTrue } from "../runtime/conditions.ts";
import { RetryableError, TerminalError } from "../../lib/errors.ts";
import { isStateSecretName } from "../services/secret_owner.ts";
import { stateSecretName } from "./state.ts";
import { rotationPeriodMs } from "./rotation.ts";
import { parseGoDuration } from "../../lib/duration.ts";
import type { DatabaseEntry } from "../services/user_databases.ts";

/** Annotations a user sets on a DatabaseUser (adoption needs the DBCluster's consent). */
export { ADOPT_ANNOTATION } from "../postgres/claims.ts";
export const ROTATE_ANNOTATION = "dbtether.io/rotate";
export const FINALIZER = "dbtether.io/databaseuser";

/**
 * Reasons of a Database that are about its server, passed on to its users as they are (a
 * namespace the DBCluster no longer allows included: the user's own change is then refused for
 * that reason, not for a Database that is merely "not Ready yet").
 */
const CLUSTER_REASONS: ReadonlySet<string> = new Set([
  "NamespaceNotAllowed",
  "ClusterUnreachable",
  "ClusterNotFound",
  "AuthenticationFailed",
  "CredentialsMissing",
]);

/** Shared with the Database controller (a schema's owner may be a DatabaseUser). */
export { databaseEntries, type DatabaseEntry, usernameOf } from "../services/user_databases.ts";

/** spec.authentication.type: how the app logs in; password unless set. */
export function authenticationOf(user: DatabaseUser): UserAuthenticationType {
  return user.spec.authentication?.type ?? "password";
}

/** Whether the user logs in by cloud IAM: no password, no rotation, one role. */
export function isIamUser(user: DatabaseUser): boolean {
  return authenticationOf(user) !== "password";
}

/** "name" in the user's namespace, "namespace/name" otherwise. */
export function entryLabel(e: DatabaseEntry, userNamespace: string | undefined): string {
  return e.namespace === (userNamespace ?? "default") ? e.name : `${e.namespace}/${e.name}`;
}

/** A usable Database of the user. */
export interface DatabaseTarget extends DatabaseEntry {
  /** The name in PostgreSQL. */
  pgName: string;
  clusterName: string;
  /** Schemas the Database wants owned by this user's role (spec.schemas[].owner). */
  ownedSchemas?: readonly string[];
}

/**
 * Checks one referenced Database: it exists, admits the user's namespace, and is Ready.
 * Throws RetryableError (DatabaseNotFound, DatabaseNotReady) or TerminalError
 * (CrossNamespaceNotAllowed).
 */
export function checkDatabase(
  user: DatabaseUser,
  e: DatabaseEntry,
  db: Database | undefined,
): DatabaseTarget {
  const label = JSON.stringify(entryLabel(e, user.metadata.namespace));
  const ns = user.metadata.namespace ?? "default";
  if (e.namespace !== ns && db && !(db.spec.allowedUserNamespaces ?? []).includes(ns)) {
    throw new TerminalError(
      "CrossNamespaceNotAllowed",
      `Cannot use Database ${label}: it does not list namespace ${
        JSON.stringify(ns)
      } in spec.allowedUserNamespaces`,
    );
  }
  if (!db) {
    throw new RetryableError("DatabaseNotFound", `Database ${label} does not exist`);
  }
  const pgName = db.status?.databaseName;
  if (!pgName || !isTrue(db.status?.conditions, "Ready")) {
    const cond = getCondition(db.status?.conditions, "Ready");
    // The server's own trouble is the user's too: say so, rather than "not Ready yet".
    if (cond && CLUSTER_REASONS.has(cond.reason)) {
      throw new RetryableError(
        cond.reason,
        `Database ${label} is not Ready: ${cond.message}`,
      );
    }
    throw new RetryableError("DatabaseNotReady", `Database ${label} is not Ready yet`);
  }
  const owned = (db.spec.schemas ?? []).filter((s) =>
    s.owner?.databaseUser === user.metadata.name && db.metadata.namespace === ns
  ).map((s) => s.name);
  return {
    ...e,
    pgName,
    clusterName: db.spec.clusterRef.name,
    ...(owned.length ? { ownedSchemas: owned } : {}),
  };
}

/** The one DBCluster of all targets; a role lives on one server. */
export function clusterOf(targets: readonly DatabaseTarget[]): string {
  const names = [...new Set(targets.map((t) => t.clusterName))];
  if (names.length !== 1) {
    throw new TerminalError(
      "DatabasesOnDifferentClusters",
      `Cannot create one role for databases on different DBClusters: ${names.join(", ")}`,
    );
  }
  return names[0]!;
}

/**
 * Refuses a `spec.secret.name` of the form of a credentials record (`dbtether-<name>-state`,
 * the user's own included): an application Secret there would overwrite a record or squat the
 * name of a user created later.
 */
export function checkSecretName(user: DatabaseUser): void {
  const name = user.spec.secret.name;
  if (name === undefined) return;
  if (name === stateSecretName(user) || isStateSecretName(name)) {
    throw new TerminalError(
      "SecretNameReserved",
      `Cannot use spec.secret.name ${JSON.stringify(name)}: names of the form ` +
        `dbtether-<name>-state are reserved for the credentials records of DatabaseUsers`,
    );
  }
}

/**
 * Refuses validUntil.afterPasswordChange no longer than the rotation period: the role would
 * expire before the rotation that gives it a new password, and the Secret stop logging in. Also
 * refuses it on an IAM user, which has no password whose change it could follow.
 */
export function checkValidUntil(user: DatabaseUser): void {
  const after = user.spec.validUntil?.afterPasswordChange;
  // Also refused at admission; an object stored before that rule still gets a clear reason
  // instead of an expiry that silently never comes.
  if (after !== undefined && isIamUser(user)) {
    throw new TerminalError(
      "InvalidAuthentication",
      `Cannot use validUntil.afterPasswordChange with authentication ` +
        `${authenticationOf(user)}: an IAM user has no password to change; use validUntil.at`,
    );
  }
  const period = rotationPeriodMs(user.spec.rotation);
  if (after === undefined || period === undefined) return;
  if (parseGoDuration(after) <= period) {
    throw new TerminalError(
      "ValidUntilBeforeRotation",
      `Cannot use validUntil.afterPasswordChange ${after}: it must be longer than the rotation ` +
        `period (${period / 3_600_000}h), or the role expires before its next password`,
    );
  }
}

/** The controller reference every Secret of the user carries. */
export function ownerRefOf(u: DatabaseUser): OwnerReference {
  return {
    apiVersion: DatabaseUserKind.apiVersion,
    kind: DatabaseUserKind.kind,
    name: u.metadata.name,
    uid: u.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}
