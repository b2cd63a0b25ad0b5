/**
 * The status of a DatabaseUser, pure: the Ready condition with a reason from one declared list,
 * the phase derived from it, and the summaries the printer columns show.
 */
import type { DatabaseUser, DatabaseUserStatus } from "../../crds/database_user.ts";
import { SERVER_WORK_REASONS } from "../services/reasons.ts";
import { type Failure, failureIn } from "../runtime/failure.ts";
import { type ConditionInput, setCondition } from "../runtime/conditions.ts";
import { pauseStateOf, withPause } from "../runtime/pause.ts";
import { type DatabaseEntry, entryLabel } from "./spec.ts";
import { kubeTime } from "../../lib/time.ts";

/**
 * Reasons of the Ready condition, declared once: the checks of the spec, the DBCluster's
 * resolver, the SQL module's failures and refusals, the Secrets, and the password steps.
 */
export const READY_REASONS = [
  "Ready",
  "DatabaseNotFound",
  "DatabaseNotReady",
  "CrossNamespaceNotAllowed",
  "DatabasesOnDifferentClusters",
  "InvalidUsername",
  "InvalidName",
  ...SERVER_WORK_REASONS,
  "SecretConflict",
  "SecretOwnedByOther",
  "SecretNameReserved",
  "SecretDeliveryNotAllowed",
  "SecretDeliveryConflict",
  "ValidUntilBeforeRotation",
  "PasswordVerificationFailed",
  "InvalidAuthentication",
  "IamNotAvailable",
  "IamUserNotFound",
  "Deleting",
  "Observed",
  "OutOfSync",
  "ReconcileFailed",
] as const;

/** A reason of the Ready condition. */
export type ReadyReason = typeof READY_REASONS[number];

/** Why a reconcile could not make the user Ready. */
export type ReadyFailure = Failure<ReadyReason>;

/**
 * The one mapping of a thrown value to a Ready reason ({@link failureIn}). A reason this kind
 * does not declare (an API error such as `Forbidden`, or anything unexpected) is
 * `ReconcileFailed`, with the error's message.
 */
export const readyFailure: (e: unknown) => ReadyFailure = failureIn(
  READY_REASONS,
  "ReconcileFailed",
);

const WAITING: ReadonlySet<string> = new Set([
  "IamUserNotFound",
  "DatabaseNotFound",
  "DatabaseNotReady",
  "Deleting",
  "OutOfSync",
]);
/** Ready reasons that mean Ready=True. */
const READY_TRUE: ReadonlySet<string> = new Set(["Ready", "Observed"]);

/** `db1`, or `db1 (+N)` with more. */
export function databasesSummary(labels: readonly string[]): string | undefined {
  if (labels.length === 0) return undefined;
  return labels.length === 1 ? labels[0] : `${labels[0]} (+${labels.length - 1})`;
}

/** The distinct levels in the order of the spec, comma-separated. */
export function privilegesSummary(levels: readonly string[]): string | undefined {
  const distinct = [...new Set(levels)];
  return distinct.length ? distinct.join(",") : undefined;
}

export interface StatusInput {
  entries: readonly DatabaseEntry[];
  username: string;
  now: number;
  ready: { reason: ReadyReason; message: string; terminal?: boolean };
  clusterName?: string | undefined;
  secretNames?: readonly string[] | undefined;
  activeRole?: string | undefined;
  passwordUpdatedAt?: string | undefined;
  nextRotation?: number | undefined;
  lastRotateRequest?: string | undefined;
  /** Observe's InSync condition; absent removes it (Manage). */
  inSync?: ConditionInput | undefined;
}

/**
 * The status to write. Fields not known in this reconcile (e.g. after an early failure) keep
 * their previous values, so a transient error does not blank the columns.
 */
export function computeStatus(user: DatabaseUser, i: StatusInput): DatabaseUserStatus {
  const prev = user.status ?? {};
  const ok = READY_TRUE.has(i.ready.reason);
  const labels = i.entries.map((e) => entryLabel(e, user.metadata.namespace));
  const at = { generation: user.metadata.generation, now: new Date(i.now) };
  let conditions = i.inSync
    ? setCondition(prev.conditions, i.inSync, at)
    : (prev.conditions ?? []).filter((c) => c.type !== "InSync");
  conditions = withPause(conditions, pauseStateOf(user), at);
  conditions = setCondition(conditions, {
    type: "Ready",
    status: ok,
    reason: i.ready.reason,
    message: i.ready.message,
  }, at);
  const phase = ok
    ? "Ready"
    : i.ready.reason === "Deleting"
    ? "Deleting"
    : WAITING.has(i.ready.reason) && !i.ready.terminal
    ? "Pending"
    : "Failed";
  const secretNames = i.secretNames ?? prev.secretNames;
  const out: DatabaseUserStatus = {
    ...prev,
    phase,
    message: i.ready.message,
    username: i.username,
    databases: labels,
    conditions,
  };
  const summary = databasesSummary(labels);
  if (summary !== undefined) out.databasesSummary = summary;
  const privs = privilegesSummary(i.entries.map((e) => e.level === "none" ? "schemas" : e.level));
  if (privs !== undefined) out.privilegesSummary = privs;
  if (user.metadata.generation !== undefined) out.observedGeneration = user.metadata.generation;
  if (i.clusterName !== undefined) out.clusterName = i.clusterName;
  if (secretNames !== undefined) {
    out.secretNames = [...secretNames];
    if (secretNames[0] !== undefined) out.secretName = secretNames[0];
  }
  if (i.activeRole !== undefined) out.activeRole = i.activeRole;
  if (i.passwordUpdatedAt !== undefined) out.passwordUpdatedAt = i.passwordUpdatedAt;
  if (i.lastRotateRequest !== undefined) out.lastRotateRequest = i.lastRotateRequest;
  if (i.nextRotation !== undefined) out.nextRotation = kubeTime(i.nextRotation);
  else if (i.ready.reason === "Ready") delete out.nextRotation;
  return out;
}
