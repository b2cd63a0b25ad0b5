/**
 * Pure decisions of the DatabaseUser controller, from observed state only:
 * - {@link planTargets}: whether the spec can be acted on at all (names, Databases, one server);
 * - {@link planUser}: one pass of a live user — either one credentials step, after which the
 *   reconciler requeues at once and the next pass reads the record back, or (the record
 *   settled) the roles, grants and Secrets;
 * - {@link planDeletion}: what deleting a user means for its roles (retain, drop, or for gcpIam
 *   release dbtether's grants) and Secrets.
 *
 * The invariant of the credentials record (docs/design/rotation.md) is kept by the shape of the
 * plan: a new password is only ever *recorded* (`recordPending`), and a verifier is only ever
 * set (`applyPending`) for a pending password read back from the record in a later pass, so
 * PostgreSQL never sees a password the record does not hold.
 */
import type { Database } from "../../crds/database.ts";
import type { DatabaseUser } from "../../crds/database_user.ts";
import { DbtetherError } from "../../lib/errors.ts";
import type { Marker } from "../postgres/names.ts";
import type { UserRelease } from "../postgres/plan_user_release.ts";
import { identifierProblem } from "../postgres/quote.ts";
import {
  decideRotation,
  loginRoles,
  type PasswordReason,
  rotationPeriodMs,
  rotationTarget,
} from "./rotation.ts";
import { type DeliveryInput, type DeliveryRefusal, planDelivery } from "./delivery.ts";
import { isOurs, type Secret, type SecretConflictReason } from "./secret.ts";
import { planSecrets, type SecretChange, secretTargets } from "./secret_plan.ts";
import {
  checkDatabase,
  checkSecretName,
  checkValidUntil,
  clusterOf,
  databaseEntries,
  type DatabaseEntry,
  type DatabaseTarget,
  FINALIZER,
  isIamUser,
  ownerRefOf,
  ROTATE_ANNOTATION,
  usernameOf,
} from "./spec.ts";
import { type CredentialsState, parseState, type Pending, STATE_LABEL } from "./state.ts";
import { type ReadyFailure, readyFailure } from "./status.ts";

/** Why nothing (more) can be done now; `terminal`: only a spec change helps. */
export type Blocked = ReadyFailure;

/** The Databases of a user, checked, and their one DBCluster; or why they cannot be used. */
export type TargetsPlan =
  | { kind: "targets"; targets: DatabaseTarget[]; clusterName: string }
  | { kind: "blocked"; blocked: Blocked };

/**
 * Checks what the spec names before anything is read from the server: the Secret name, the role
 * name (`InvalidUsername`, terminal: a metadata.name that is no PostgreSQL identifier needs a
 * spec.username), each Database (`lookup` reads the informer cache), and their one DBCluster.
 * The admin role's own name is refused later by the SQL module (`InvalidName`), which knows it.
 */
export function planTargets(
  user: DatabaseUser,
  lookup: (e: DatabaseEntry) => Database | undefined,
): TargetsPlan {
  try {
    checkSecretName(user);
    checkValidUntil(user);
    const username = usernameOf(user);
    const problem = identifierProblem(username);
    if (problem) {
      const hint = user.spec.username === undefined ? " (set spec.username)" : "";
      return {
        kind: "blocked",
        blocked: {
          reason: "InvalidUsername",
          message: `Cannot use role name ${JSON.stringify(username)}: it ${problem}${hint}`,
          terminal: true,
        },
      };
    }
    const targets = databaseEntries(user).map((e) => checkDatabase(user, e, lookup(e)));
    return { kind: "targets", targets, clusterName: clusterOf(targets) };
  } catch (e) {
    // The checks of spec.ts throw domain errors; anything else is a bug and goes on up.
    if (!(e instanceof DbtetherError)) throw e;
    return { kind: "blocked", blocked: readyFailure(e) };
  }
}

/** What one pass of a live user observed (after {@link planTargets} let it through). */
export interface ObservedUser {
  user: DatabaseUser;
  targets: readonly DatabaseTarget[];
  clusterName: string;
  server: {
    host: string;
    port: number;
    reader?: { host: string; port: number };
    /** The DBCluster's spec.authentication.region when it logs in by awsIam. */
    region?: string;
  };
  /** The credentials record as read from the API (undefined: there is none). */
  record: Secret | undefined;
  /** The application Secrets of {@link secretTargets} that exist, by name. */
  existing: ReadonlyMap<string, Secret>;
  /** The Secrets this user owns (informer cache), the record included. */
  owned: readonly Secret[];
  /** Cluster-scoped resources that read a Secret of that name (secret_owner.ts). */
  readers: ReadonlyMap<string, readonly string[]>;
  /**
   * When the record holds no password: the application Secret {@link importCandidate} named,
   * and the record rebuilt from it if its password logged in (undefined: it did not).
   */
  imported?: { secret: string; state: CredentialsState | undefined };
  /** spec.secret.namespace: the target, whether it is permitted, what is there and the copies. */
  delivery: Omit<DeliveryInput, "user" | "wanted" | "conn">;
  now: number;
}

/** A record that holds a password about to be set. */
export type PendingState = CredentialsState & { pending: Pending };

/** One step of a DatabaseUser pass; each is idempotent. */
export type UserAction =
  | { kind: "addFinalizer" }
  /** Write the record rebuilt from an application Secret whose password logged in. */
  | { kind: "recordImported"; state: CredentialsState }
  /** Generate a password for `role` and write it to the record as pending; nothing else. */
  | {
    kind: "recordPending";
    state: CredentialsState;
    role: string;
    reason: PasswordReason;
    request?: string;
  }
  /** Set the recorded pending password, verify it by logging in, write the committed record. */
  | { kind: "applyPending"; state: PendingState }
  /**
   * Make the login roles, their grants and settings match the spec. `clearPassword`: an IAM
   * user whose role may still have a password (PASSWORD NULL).
   */
  | { kind: "ensureRoles"; state: CredentialsState; clearPassword?: boolean }
  /** Write and delete application Secrets (in this order, as planSecrets listed them). */
  | { kind: "writeSecrets"; changes: SecretChange[] }
  /** Write the record naming the application Secrets that now hold its password. */
  | { kind: "recordSecrets"; state: CredentialsState };

/** What status says after a converged pass. */
export interface UserOutcome {
  clusterName: string;
  secretNames: string[];
  state: CredentialsState;
  /** When the next scheduled rotation is due (ms). */
  next: number | undefined;
}

/** One pass of a live user. */
export type UserPlan =
  /** Nothing may run; the reason goes to status. */
  | { kind: "blocked"; blocked: Blocked }
  /** One credentials step (after the finalizer): requeue at once, and read the record back. */
  | { kind: "credentials"; actions: UserAction[] }
  /** The record is settled: roles and Secrets converge; Ready unless `blocked`. */
  | { kind: "converge"; actions: UserAction[]; blocked?: Blocked; outcome: UserOutcome };

/** Plans one pass of a live user from what it observed. */
export function planUser(o: ObservedUser): UserPlan {
  if (o.record && !isOurs(o.record, o.user)) {
    return {
      kind: "blocked",
      blocked: {
        reason: "SecretConflict",
        message: `Cannot keep credentials in Secret ${
          JSON.stringify(o.record.metadata.name)
        }: it exists and does not belong to this DatabaseUser`,
        terminal: false,
      },
    };
  }
  const state = parseState(o.record);
  // The finalizer goes on before the first action that changes anything.
  const first: UserAction[] = o.user.metadata.finalizers?.includes(FINALIZER)
    ? []
    : [{ kind: "addFinalizer" }];
  if (isIamUser(o.user)) return planIamConverge(o, state, first);
  const step = credentialsAction(o, state);
  if (step) return { kind: "credentials", actions: [...first, step] };
  return planConverge(o, state, first);
}

/**
 * The application Secret to import a password from when the record holds none (it was deleted,
 * or the Secret comes from the Go dbtether): the first wanted Secret that exists and is ours.
 */
export function importCandidate(
  o: Pick<ObservedUser, "user" | "targets" | "existing">,
  state: CredentialsState,
): string | undefined {
  if (state.pending || state.password !== undefined) return undefined;
  return secretTargets(o.user, o.targets).find((w) => {
    const s = o.existing.get(w.name);
    return s !== undefined && isOurs(s, o.user);
  })?.name;
}

function credentialsAction(o: ObservedUser, state: CredentialsState): UserAction | undefined {
  const { user } = o;
  const wanted = secretTargets(user, o.targets);
  const requested = user.metadata.annotations?.[ROTATE_ANNOTATION];
  const decision = decideRotation({
    now: o.now,
    rotation: user.spec.rotation,
    updatedAt: state.updatedAt ? Date.parse(state.updatedAt) : undefined,
    requested,
    lastRequest: state.lastRequest,
    deletedSecrets: state.secrets.filter((n) =>
      wanted.some((w) => w.name === n) && !o.existing.has(n)
    ),
  });
  const step = planCredentials({
    state,
    username: usernameOf(user),
    alternating: user.spec.rotation?.strategy === "Alternating",
    importFrom: o.imported?.secret,
    due: decision.reason,
    request: requested,
    importFailed: o.imported !== undefined && o.imported.state === undefined,
  });
  switch (step.kind) {
    case "steady":
      return undefined;
    case "import":
      return { kind: "recordImported", state: o.imported!.state! };
    case "begin":
      return {
        kind: "recordPending",
        state,
        role: step.role,
        reason: step.reason,
        ...(step.request === undefined ? {} : { request: step.request }),
      };
    case "apply":
      return { kind: "applyPending", state: { ...state, pending: state.pending! } };
  }
}

/**
 * A user that logs in by cloud IAM: no credentials step, the role is spec.username, the Secrets
 * carry no password (awsIam: the region to sign the token for). The record keeps no password:
 * one it still holds (the user was a password user) is forgotten only after ensureRoles set
 * PASSWORD NULL, so a crash in between clears it again.
 */
function planIamConverge(o: ObservedUser, state: CredentialsState, first: UserAction[]): UserPlan {
  const auth = o.user.spec.authentication;
  const region = auth?.region ?? o.server.region;
  if (auth?.type === "awsIam" && region === undefined) {
    return {
      kind: "blocked",
      blocked: {
        reason: "InvalidAuthentication",
        message: `Cannot write the Secret of awsIam user ${
          JSON.stringify(usernameOf(o.user))
        }: set spec.authentication.region (DBCluster ${
          JSON.stringify(o.clusterName)
        } does not log in by awsIam, so it names no region)`,
        terminal: true,
      },
    };
  }
  const { password: _p, pending: _q, ...rest } = state;
  const iam: CredentialsState = { ...rest, role: usernameOf(o.user) };
  // PASSWORD NULL on the pass that takes the role (no record yet: an adopted role may have had
  // one) or turns a password user into an IAM one; not on every pass (the record of an IAM user
  // holds no role, so comparing roles would always differ and rewrite the record each pass).
  const forget = state.password !== undefined || state.pending !== undefined ||
    o.record === undefined;
  return planConverge(o, iam, first, { ...(region ? { region } : {}), forget });
}

function planConverge(
  o: ObservedUser,
  state: CredentialsState,
  first: UserAction[],
  iam?: { region?: string; forget: boolean },
): UserPlan {
  const { user, targets } = o;
  const wanted = secretTargets(user, targets);
  const conn = {
    host: o.server.host,
    port: o.server.port,
    ...(o.server.reader ? { reader: o.server.reader } : {}),
    databases: targets.map((t) => t.pgName),
    username: state.role!,
    ...(iam ? {} : { password: state.password! }),
    ...(iam?.region ? { region: iam.region } : {}),
  };
  const secrets = planSecrets({
    user,
    ownerRef: ownerRefOf(user),
    wanted,
    conn,
    existing: o.existing,
    owned: o.owned.filter((s) => s.metadata.labels?.[STATE_LABEL] !== "true"),
    referencedBy: (name) => o.readers.get(name) ?? [],
  });
  const actions: UserAction[] = [
    ...first,
    { kind: "ensureRoles", state, ...(iam?.forget ? { clearPassword: true } : {}) },
  ];
  const conflicts: { reason: SecretConflictReason; message: string }[] = [];
  const changes: SecretChange[] = [];
  for (const a of secrets) {
    if (a.kind === "conflict") conflicts.push(a);
    else changes.push(a);
  }
  const refusals: { reason: DeliveryRefusal; message: string }[] = [];
  // Copies after the Secrets of the user's own namespace, and only once those have no conflict.
  for (const a of conflicts.length ? [] : planDelivery({ ...o.delivery, user, wanted, conn })) {
    if (a.kind === "refused") refusals.push(a);
    else changes.push(a);
  }
  if (changes.length) actions.push({ kind: "writeSecrets", changes });
  const written = wanted.map((w) => w.name).sort();
  if (
    !conflicts.length && (JSON.stringify(state.secrets) !== JSON.stringify(written) || iam?.forget)
  ) {
    actions.push({ kind: "recordSecrets", state: { ...state, secrets: written } });
  }
  const period = rotationPeriodMs(user.spec.rotation);
  const outcome: UserOutcome = {
    clusterName: o.clusterName,
    secretNames: wanted.map((w) => w.name),
    state,
    next: period !== undefined && state.updatedAt
      ? Date.parse(state.updatedAt) + period
      : undefined,
  };
  const problems = [...conflicts, ...refusals];
  if (!problems.length) return { kind: "converge", actions, outcome };
  const blocked: Blocked = {
    reason: problems[0]!.reason,
    message: problems.map((x) => x.message).join("; "),
    // Only a change of the spec or of the DBCluster's allow-list (both watched) helps.
    terminal: problems.every((p) => p.reason === "SecretDeliveryNotAllowed"),
  };
  return { kind: "converge", actions, blocked, outcome };
}

/** One step of deleting a user; each is idempotent. */
export type DeletionAction =
  /** deletionPolicy Retain: the role stays, without LOGIN. */
  | { kind: "retainRole"; clusterName: string; role: string; marker: Marker }
  | { kind: "dropRole"; clusterName: string; role: string; marker: Marker }
  /** gcpIam, deletionPolicy Delete: the role stays as Cloud SQL made it; dbtether's grants go. */
  | { kind: "releaseRole"; clusterName: string; release: UserRelease }
  | { kind: "deleteSecret"; namespace: string | undefined; name: string; uid?: string }
  | { kind: "removeFinalizer" };

/** The deletion steps that act on a role, on the DBCluster they name. */
export type RoleDeletionAction = Extract<DeletionAction, { clusterName: string }>;

/**
 * Plans the deletion of `user`: every login role it may have had (both of Alternating, and the
 * one status names) retained or dropped by deletionPolicy on the DBCluster of its Databases (or
 * the one status recorded, when they are gone; none known: no role is touched), then its
 * Secrets — no garbage collector is assumed — and the finalizer. A gcpIam role is Cloud SQL's
 * (its admin API made it) and is never dropped nor loses LOGIN: Delete releases what dbtether
 * granted it ({@link releaseOf}), Retain leaves it with its grants.
 */
export function planDeletion(
  user: DatabaseUser,
  o: { databases: readonly (Database | undefined)[]; owned: readonly Secret[] },
): DeletionAction[] {
  if (!user.metadata.finalizers?.includes(FINALIZER)) return [];
  const clusterName =
    o.databases.map((d) => d?.spec.clusterRef.name).find((n) => n !== undefined) ??
      user.status?.clusterName;
  const actions: DeletionAction[] = [];
  const retain = user.spec.deletionPolicy === "Retain";
  if (clusterName && user.spec.authentication?.type === "gcpIam") {
    if (!retain) actions.push({ kind: "releaseRole", clusterName, release: releaseOf(user, o) });
  } else if (clusterName) {
    const roles = new Set(loginRoles(usernameOf(user), true));
    if (user.status?.activeRole) roles.add(user.status.activeRole);
    const marker = markerOf(user);
    const kind = retain ? "retainRole" : "dropRole";
    for (const role of roles) actions.push({ kind, clusterName, role, marker });
  }
  for (const s of o.owned) {
    actions.push({
      kind: "deleteSecret",
      namespace: s.metadata.namespace,
      name: s.metadata.name,
      ...(s.metadata.uid ? { uid: s.metadata.uid } : {}),
    });
  }
  actions.push({ kind: "removeFinalizer" });
  return actions;
}

const markerOf = (user: DatabaseUser): Marker => ({
  namespace: user.metadata.namespace ?? "default",
  name: user.metadata.name,
});

/**
 * What the spec had dbtether give the role: the settings it names (idle_in_transaction_session_timeout
 * when idleInTransactionTimeout is set), per database whose name in PostgreSQL its Database still
 * tells, and memberOf. Memberships in dbtether's group roles need no list: their marker says so.
 */
export function releaseOf(
  user: DatabaseUser,
  o: { databases: readonly (Database | undefined)[] },
): UserRelease {
  const databases = databaseEntries(user).flatMap((e, i) => {
    const name = o.databases[i]?.status?.databaseName;
    return name ? [{ name, settings: Object.keys(e.settings ?? {}) }] : [];
  });
  return {
    username: usernameOf(user),
    marker: markerOf(user),
    databases,
    settings: [
      ...Object.keys(user.spec.settings ?? {}),
      ...(user.spec.idleInTransactionTimeout ? ["idle_in_transaction_session_timeout"] : []),
    ],
    memberOf: user.spec.memberOf ?? [],
  };
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
