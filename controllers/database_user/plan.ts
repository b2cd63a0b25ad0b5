/**
 * Pure decisions of the DatabaseUser controller: which databases (and with which levels) the
 * spec names, whether each referenced Database may be used, what to do about the credentials
 * (import, start a rotation, finish one, nothing), and which Secrets to write or delete.
 */
import type { Database } from "../../crds/database.ts";
import type { DatabaseUser, PrivilegeLevel } from "../../crds/database_user.ts";
import type { OwnerReference } from "../../crds/kind.ts";
import { getCondition, isTrue } from "../runtime/conditions.ts";
import { RetryableError, TerminalError } from "../../lib/errors.ts";
import { objectKey } from "../runtime/informer.ts";
import type { PasswordReason } from "./rotation.ts";
import { rotationTarget } from "./rotation.ts";
import {
  type Connection,
  decideSecret,
  desiredSecret,
  isOurs,
  perDatabaseSecretName,
  primarySecretName,
  renderData,
  type Secret,
  type SecretConflictReason,
} from "./secret.ts";
import { isStateSecretName, otherOwner } from "../services/secret_owner.ts";
import { type CredentialsState, stateSecretName } from "./state.ts";

/** Annotations a user sets on a DatabaseUser (adoption needs the DBCluster's consent). */
export { ADOPT_ANNOTATION } from "../postgres/claims.ts";
export const ROTATE_ANNOTATION = "dbtether.io/rotate";
export const FINALIZER = "dbtether.io/databaseuser";

/** Reasons of a Database that are about its server, passed on to its users as they are. */
const CLUSTER_REASONS: ReadonlySet<string> = new Set([
  "ClusterUnreachable",
  "ClusterNotFound",
  "AuthenticationFailed",
  "CredentialsMissing",
]);

/** One Database entry of the spec, whichever form it was written in. */
export interface DatabaseEntry {
  name: string;
  namespace: string;
  level: PrivilegeLevel;
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
  return list.map((e) => ({
    name: e.name,
    namespace: e.namespace ?? ns,
    level: ("privileges" in e && e.privileges) || s.privileges,
  }));
}

/** The role name: spec.username, else metadata.name exactly. */
export function usernameOf(user: DatabaseUser): string {
  return user.spec.username ?? user.metadata.name;
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
  return { ...e, pgName, clusterName: db.spec.clusterRef.name };
}

/**
 * Keys of the DatabaseUsers on DBCluster `name`: through their Databases (from the informer
 * cache), or the cluster recorded in their status when a Database is gone.
 */
export function usersOfCluster(
  users: readonly DatabaseUser[],
  databases: readonly Database[],
  name: string,
): string[] {
  const onCluster = new Set(
    databases.filter((d) => d.spec.clusterRef.name === name).map(objectKey),
  );
  return users.filter((u) =>
    u.status?.clusterName === name ||
    databaseEntries(u).some((e) => onCluster.has(`${e.namespace}/${e.name}`))
  ).map(objectKey);
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

/** What to do about the password. */
export type CredentialsStep =
  /** No record: try the password of an application Secret this user wrote before. */
  | { kind: "import"; secret: string }
  /** Generate a password for `role` and record it as pending. */
  | { kind: "begin"; role: string; reason: PasswordReason; request?: string }
  /** Set the pending password, verify it by logging in, commit it. */
  | { kind: "apply" }
  | { kind: "steady" };

/** The next credentials step from the record, the rotation decision and the Secrets seen. */
export function planCredentials(i: {
  state: CredentialsState;
  username: string;
  alternating: boolean;
  /** An application Secret of this user that exists (for import when the record is lost). */
  importFrom: string | undefined;
  /** Set when a rotation is due now. */
  due: PasswordReason | undefined;
  request: string | undefined;
  /** The import was tried and failed. */
  importFailed: boolean;
}): CredentialsStep {
  if (i.state.pending) return { kind: "apply" };
  if (i.state.password === undefined) {
    if (i.importFrom !== undefined && !i.importFailed) {
      return { kind: "import", secret: i.importFrom };
    }
    return {
      kind: "begin",
      role: i.username,
      reason: "Created",
      ...(i.request === undefined ? {} : { request: i.request }),
    };
  }
  if (i.due === undefined) return { kind: "steady" };
  return {
    kind: "begin",
    role: rotationTarget({
      username: i.username,
      active: i.state.role,
      alternating: i.alternating,
    }),
    reason: i.due,
    ...(i.request === undefined ? {} : { request: i.request }),
  };
}

/** An application Secret the user should have. */
export interface SecretTarget {
  name: string;
  /** The Database resource it describes (annotation dbtether.io/database). */
  databaseResource: string;
  database: string;
}

/** The application Secrets of the spec: one primary, or one per database. */
export function secretTargets(user: DatabaseUser, targets: readonly DatabaseTarget[]) {
  if (user.spec.secretGeneration === "perDatabase") {
    return targets.map((t) => ({
      name: perDatabaseSecretName(user, t.name),
      databaseResource: t.name,
      database: t.pgName,
    }));
  }
  const first = targets[0]!;
  return [{ name: primarySecretName(user), databaseResource: first.name, database: first.pgName }];
}

export type SecretAction =
  | { kind: "write"; secret: Secret; create: boolean }
  | { kind: "delete"; name: string; uid: string }
  | { kind: "conflict"; name: string; reason: SecretConflictReason; message: string };

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
 * Writes for the Secrets that differ from what the record says, deletes for Secrets this user
 * owns that the spec no longer names (the credentials record excluded), conflicts by onConflict.
 */
export function planSecrets(o: {
  user: DatabaseUser;
  ownerRef: OwnerReference;
  wanted: readonly SecretTarget[];
  conn: Omit<Connection, "database">;
  existing: ReadonlyMap<string, Secret>;
  owned: readonly Secret[];
  /** Cluster-scoped resources that read a Secret of that name (secret_owner.ts referencedBy). */
  referencedBy?: (name: string) => readonly string[];
}): SecretAction[] {
  const out: SecretAction[] = [];
  for (const w of o.wanted) {
    const existing = o.existing.get(w.name);
    const readers = o.referencedBy?.(w.name) ?? [];
    const claimedBy = existing &&
      (otherOwner(existing, { uid: o.user.metadata.uid, name: o.user.metadata.name }) ??
        (readers.length ? `${readers.join(", ")}, which reads credentials from it` : undefined));
    const d = decideSecret(existing, o.user, { claimedBy });
    if (d.kind === "conflict") {
      out.push({ kind: "conflict", name: w.name, reason: d.reason, message: d.message });
      continue;
    }
    const secret = desiredSecret({
      name: w.name,
      owner: o.user,
      ownerRef: o.ownerRef,
      databaseResource: w.databaseResource,
      data: renderData({ ...o.conn, database: w.database }, o.user.spec.secret),
      existing,
      keepForeignKeys: d.kind === "update" && d.keepForeignKeys,
    });
    if (secret) out.push({ kind: "write", secret, create: d.kind === "create" });
  }
  const names = new Set(o.wanted.map((w) => w.name));
  for (const s of o.owned) {
    if (!names.has(s.metadata.name) && isOurs(s, o.user) && s.metadata.uid) {
      out.push({ kind: "delete", name: s.metadata.name, uid: s.metadata.uid });
    }
  }
  return out;
}
