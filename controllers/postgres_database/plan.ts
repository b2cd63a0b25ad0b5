/**
 * What a PostgresDatabase reconcile does (pg-db-operator compatibility), decided from observed
 * state only: the database (through the postgres module, as for a Database), a login role of
 * the same name at the `owner` level, and the Secret. A new password is made only when there is
 * no usable Secret or when rotation is due by time, never because an event arrived.
 */
import type { PostgresDatabase } from "../../crds/postgres_database.ts";
import { TerminalError } from "../../lib/errors.ts";
import type { KubeObject } from "../runtime/types.ts";
import { isOwnedBy } from "../runtime/objects.ts";
import type { ObserveServerOptions, ServerSnapshot } from "../postgres/catalog.ts";
import { formatMarker, type Marker } from "../postgres/names.ts";
import { ADOPT_ANNOTATION, type AdoptionConsent } from "../postgres/claims.ts";
import type { DatabaseSpec as PgDatabaseSpec } from "../postgres/plan.ts";
import { checkUserClaim, type UserSpec } from "../postgres/plan_user.ts";
import { identifierProblem } from "../postgres/quote.ts";
import { secretData as decodeSecret } from "../services/resolver.ts";
import { otherOwner } from "../services/secret_owner.ts";
import { type PgdbFailure, pgdbFailure, type PgdbReason } from "./reasons.ts";

export const FINALIZER = "dbtether.io/finalizer";
/**
 * Take over what exists under this name: a database no resource claims (or one of another
 * resource of the same namespace) with its roles, the login role, the Secret. Databases and
 * roles need the DBCluster's consent (spec.adoption); a Secret of another resource never moves.
 */
export { ADOPT_ANNOTATION };
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";

/** The server as the reconcile found it. */
export type ServerState =
  | {
    kind: "ready";
    host: string;
    port: number;
    adminRole: string;
    roleExists: boolean;
    /** Why the existing role may not be used (plan_user.ts checkUserClaim), before any SQL. */
    roleRefusal?: { reason: PgdbReason; message: string };
  }
  | { kind: "unavailable"; reason: PgdbReason; message: string };

/** The target Secret as observed: undefined when it does not exist. */
export interface SecretState {
  ownedByUs: boolean;
  /** Whom else it belongs to (another dbtether resource, a controller, a DBCluster's credentials). */
  claimedBy?: string;
  data: Readonly<Record<string, string>>;
  creationTimestamp?: string;
}

/** Where the role's password comes from in this reconcile. */
export type PasswordSource =
  /** Leave the role's password alone. */
  | "keep"
  /** Generate a new one, set it, verify a login with it, then write the Secret. */
  | "new"
  /** The role is missing but the Secret has a password: recreate the role with it. */
  | "secret";

export type PgdbAction =
  | { kind: "addFinalizer" }
  | { kind: "ensureDatabase"; spec: PgDatabaseSpec }
  | { kind: "ensureRole"; spec: UserSpec; password: PasswordSource }
  | {
    kind: "writeSecret";
    /** The Secret's data; PGPASSWORD is the password the role has after ensureRole. */
    data: Record<string, string>;
    create: boolean;
    /** The Event a new password announces (only when ensureRole made one). */
    announce?: "SecretCreated" | "PasswordRotated";
  }
  | { kind: "deleteSecret"; name: string }
  | { kind: "removeFinalizer" };

export interface PgdbPlan {
  actions: PgdbAction[];
  blocked?: PgdbFailure;
  /** When the next rotation is due (ms from now), if rotation is on. */
  rotateInMs?: number;
}

export interface PgdbInputs {
  server: ServerState;
  secret: SecretState | undefined;
  now: number;
  rotationIntervalMs?: number;
  /** The platform team's answer to adoption, read when the adopt annotation is set. */
  consent?: AdoptionConsent;
}

/** A Secret as read from the API (data base64-encoded). */
export type ObservedSecret = KubeObject<unknown, unknown> & { data?: Record<string, string> };

/**
 * The target Secret as the planner needs it: whether it is ours, whom else it belongs to
 * (`readers`: the DBClusters and BackupStorages that read credentials from it), its data.
 */
export function secretStateOf(
  p: PostgresDatabase,
  o: { secret: ObservedSecret | undefined; readers: readonly string[] },
): SecretState | undefined {
  const secret = o.secret;
  if (!secret) return undefined;
  const claimedBy = otherOwner(secret, { uid: p.metadata.uid }) ??
    (o.readers.length ? `${o.readers.join(", ")}, which reads credentials from it` : undefined);
  return {
    ownedByUs: isOwnedBy(secret, p),
    ...(claimedBy === undefined ? {} : { claimedBy }),
    data: decodeSecret(secret),
    ...(secret.metadata.creationTimestamp
      ? { creationTimestamp: secret.metadata.creationTimestamp }
      : {}),
  };
}

/** Whether this reconcile needs the server: a deleting object only removes its Secret. */
export function needsServer(p: PostgresDatabase): boolean {
  return !p.metadata.deletionTimestamp;
}

/** What to read from the server: the role, and the roles adoption may take (with consent). */
export function serverQueryOf(
  p: PostgresDatabase,
  consent: AdoptionConsent | undefined,
): ObserveServerOptions {
  const role = loginRoleOf(p, consent);
  return {
    roles: [p.spec.name],
    ...(role.adopt && consent?.granted
      ? { adoptable: { roles: [role.username], marker: formatMarker(role.marker) } }
      : {}),
  };
}

/** The server as the planner sees it, from the connection and what it holds. */
export function serverStateOf(
  p: PostgresDatabase,
  o: {
    host: string;
    port: number;
    adminRole: string;
    snap: ServerSnapshot;
    consent: AdoptionConsent | undefined;
  },
): ServerState {
  const state: ServerState = {
    kind: "ready",
    host: o.host,
    port: o.port,
    adminRole: o.adminRole,
    roleExists: o.snap.roles.has(p.spec.name),
  };
  try {
    checkUserClaim(loginRoleOf(p, o.consent), o.snap);
  } catch (e) {
    if (!(e instanceof TerminalError)) throw e;
    const { reason, message } = pgdbFailure(e);
    state.roleRefusal = { reason, message };
  }
  return state;
}

export function markerOf(p: PostgresDatabase): Marker {
  return { kind: "PostgresDatabase", namespace: p.metadata.namespace ?? "", name: p.metadata.name };
}

/** The login role as the postgres module sees it (without databases and password). */
export function loginRoleOf(p: PostgresDatabase, consent: AdoptionConsent | undefined) {
  return {
    username: p.spec.name,
    marker: markerOf(p),
    adopt: wantsAdoption(p),
    ...(consent ? { consent } : {}),
  };
}

/** The object asks to take over what exists (annotation dbtether.io/adopt). */
export function wantsAdoption(p: PostgresDatabase): boolean {
  return p.metadata.annotations?.[ADOPT_ANNOTATION] === "true";
}

/** PGUSER: the role name plus the postfix (e.g. `@servername` for Azure single server). */
export function userNameOf(p: PostgresDatabase): string {
  const t = p.spec.targetSecret;
  return p.spec.name + (t.userNamePostfix ?? t.userNamePostFix ?? "");
}

/** The Secret's data (strings) for `password` on `host:port`. */
export function secretData(
  p: PostgresDatabase,
  o: { host: string; port: number; password: string },
): Record<string, string> {
  return {
    PGDATABASE: p.spec.name,
    PGUSER: userNameOf(p),
    PGPASSWORD: o.password,
    PGHOST: o.host,
    PGPORT: String(o.port),
  };
}

/** When the password was last set: status, else the Secret's creation. */
function lastRotation(p: PostgresDatabase, secret: SecretState | undefined): number | undefined {
  const at = p.status?.passwordUpdatedAt ?? secret?.creationTimestamp;
  const ms = at === undefined ? NaN : Date.parse(at);
  return Number.isNaN(ms) ? undefined : ms;
}

export function planPostgresDatabase(p: PostgresDatabase, i: PgdbInputs): PgdbPlan {
  const hasFinalizer = p.metadata.finalizers?.includes(FINALIZER) ?? false;
  const secretName = p.spec.targetSecret.name;
  if (p.metadata.deletionTimestamp) {
    // As pg-db-operator: only the Secret goes; the database and the role stay.
    if (!hasFinalizer) return { actions: [] };
    const del: PgdbAction[] = i.secret?.ownedByUs
      ? [{ kind: "deleteSecret", name: secretName }]
      : [];
    return { actions: [...del, { kind: "removeFinalizer" }] };
  }
  const s = i.server;
  if (s.kind === "unavailable") {
    return { actions: [], blocked: { reason: s.reason, message: s.message, terminal: false } };
  }
  const problem = identifierProblem(p.spec.name, { adminRole: s.adminRole });
  if (problem) {
    return {
      actions: [],
      blocked: {
        reason: "InvalidName",
        message: `Cannot use name ${JSON.stringify(p.spec.name)}: it ${problem}`,
        terminal: true,
      },
    };
  }
  const adopt = wantsAdoption(p);
  if (s.roleRefusal) return { actions: [], blocked: { ...s.roleRefusal, terminal: true } };
  if (i.secret && !i.secret.ownedByUs && i.secret.claimedBy !== undefined) {
    return {
      actions: [],
      blocked: {
        reason: "SecretOwnedByOther",
        message: `Cannot write Secret ${JSON.stringify(secretName)}: it belongs to ` +
          `${i.secret.claimedBy}, and is never taken over (choose another targetSecret.name)`,
        terminal: false,
      },
    };
  }
  if (i.secret && !i.secret.ownedByUs && !adopt) {
    return {
      actions: [],
      blocked: {
        reason: "SecretExistsUnmanaged",
        message: `Cannot write Secret ${JSON.stringify(secretName)}: it exists and was not ` +
          `created for this PostgresDatabase (delete it, or annotate ${ADOPT_ANNOTATION}: "true")`,
        terminal: true,
      },
    };
  }
  const marker = markerOf(p);
  const actions: PgdbAction[] = [];
  if (!hasFinalizer) actions.push({ kind: "addFinalizer" });
  actions.push({
    kind: "ensureDatabase",
    spec: {
      database: p.spec.name,
      marker,
      revokePublicConnect: true,
      forceAdopt: adopt,
      adoptAnnotation: ADOPT_ANNOTATION,
      ...(i.consent ? { consent: i.consent } : {}),
    },
  });
  const last = lastRotation(p, i.secret);
  const interval = i.rotationIntervalMs;
  const due = interval !== undefined && (last === undefined || i.now - last >= interval);
  const current = i.secret?.ownedByUs ? i.secret.data.PGPASSWORD : undefined;
  const password: PasswordSource = !current || due ? "new" : !s.roleExists ? "secret" : "keep";
  actions.push({
    kind: "ensureRole",
    spec: { ...loginRoleOf(p, i.consent), databases: [{ name: p.spec.name, level: "owner" }] },
    password,
  });
  const data = secretData(p, { host: s.host, port: s.port, password: current ?? "" });
  const same = i.secret !== undefined && i.secret.ownedByUs &&
    Object.entries(data).every(([k, v]) => i.secret!.data[k] === v);
  if (password === "new" || !same) {
    const create = i.secret === undefined;
    actions.push({
      kind: "writeSecret",
      data,
      create,
      ...(password === "new" ? { announce: create ? "SecretCreated" : "PasswordRotated" } : {}),
    });
  }
  const plan: PgdbPlan = { actions };
  if (interval !== undefined) {
    plan.rotateInMs = password === "new" ? interval : Math.max(0, last! + interval - i.now);
  }
  return plan;
}
