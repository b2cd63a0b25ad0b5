/**
 * DBCluster status from the outcome of a health check and of the isolation pass that follows
 * it. Pure.
 */
import type { DBCluster, DBClusterStatus } from "../../crds/dbcluster.ts";
import {
  type ConditionEvent,
  conditionEvent,
  type ConditionInput,
  getCondition,
  setCondition,
} from "../runtime/conditions.ts";
import { kubeTime } from "../../lib/time.ts";
import type { IsolationOutcome, IsolationReason } from "./isolation.ts";
import type { CheckFailureReason } from "./reasons.ts";

export type CheckOutcome =
  | { ok: true; version: string; versionNum: number; isolation?: IsolationOutcome }
  | { ok: false; reason: CheckFailureReason; message: string };

/** "15.4 (Debian 15.4-1)" or "15.4" → "15.4"; RDS/Aurora report the plain form. */
export function shortVersion(serverVersion: string): string {
  return serverVersion.trim().split(/\s+/)[0] ?? serverVersion;
}

export function clusterStatus(c: DBCluster, outcome: CheckOutcome, now: number): DBClusterStatus {
  const generation = c.metadata.generation;
  const old = c.status ?? {};
  const condOpts = { now: new Date(now), ...(generation !== undefined ? { generation } : {}) };
  let conditions = setCondition(
    old.conditions,
    outcome.ok
      ? {
        type: "Ready",
        status: true,
        reason: "Connected",
        message: `Connected to PostgreSQL ${outcome.version}`,
      }
      : { type: "Ready", status: false, reason: outcome.reason, message: outcome.message },
    condOpts,
  );
  const isolation = outcome.ok ? outcome.isolation : undefined;
  if (isolation) conditions = setCondition(conditions, isolationCondition(isolation), condOpts);
  const status: DBClusterStatus = {
    ...old,
    phase: outcome.ok ? "Connected" : "Failed",
    message: outcome.ok ? `Connected to PostgreSQL ${outcome.version}` : outcome.message,
    lastCheckTime: kubeTime(now),
    conditions,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  if (outcome.ok) {
    status.version = outcome.version;
    status.versionNum = outcome.versionNum;
  }
  if (isolation && isolation.failure === undefined) {
    status.isolation = isolationRecord(old.isolation, isolation, now);
  }
  return status;
}

// Issue 7, isolation from the databases dbtether does not manage (DBCluster spec.isolation).

/** At most this many databases are listed in status.isolation.databases. */
export const MAX_LISTED_DATABASES = 500;

type IsolationRecord = NonNullable<DBClusterStatus["isolation"]>;
type DatabaseRecord = NonNullable<IsolationRecord["databases"]>[number];

/** status.isolation: every database dbtether does not manage, with when it was restricted. */
export function isolationRecord(
  old: DBClusterStatus["isolation"],
  o: Exclude<IsolationOutcome, { failure: string }>,
  now: number,
): IsolationRecord {
  const before = new Map((old?.databases ?? []).map((d) => [d.name, d]));
  const grantedNow = new Map(o.restricted.map((r) => [r.database, r.grantees.length]));
  const rows: DatabaseRecord[] = [];
  for (const name of o.closed) {
    const granted = grantedNow.get(name);
    const prev = before.get(name);
    const row: DatabaseRecord = { name, publicConnect: false };
    if (granted !== undefined) {
      row.restrictedAt = kubeTime(now);
      row.grantedRoles = granted;
    } else if (prev && !prev.publicConnect && prev.restrictedAt !== undefined) {
      row.restrictedAt = prev.restrictedAt;
      if (prev.grantedRoles !== undefined) row.grantedRoles = prev.grantedRoles;
    }
    rows.push(row);
  }
  for (const d of o.open) rows.push({ name: d.database, publicConnect: true, reason: d.reason });
  rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { mode: o.mode, databases: rows.slice(0, MAX_LISTED_DATABASES) };
}

const names = (xs: readonly string[]) => {
  const shown = xs.slice(0, 20).map((x) => JSON.stringify(x)).join(", ");
  return xs.length > 20 ? `${shown} and ${xs.length - 20} more` : shown;
};

/** The Isolated condition. It never affects Ready. */
export function isolationCondition(o: IsolationOutcome): ConditionInput & {
  reason: IsolationReason;
} {
  const type = "Isolated";
  if (o.failure !== undefined) {
    return { type, status: false, reason: "RestrictFailed", message: o.failure };
  }
  if (o.open.length === 0) {
    return {
      type,
      status: true,
      reason: "Restricted",
      message: o.closed.length
        ? `PUBLIC cannot connect to the databases dbtether does not manage (${
          names(o.closed)
        }): the roles dbtether creates connect only to the databases they are granted`
        : "The server has no database that dbtether does not manage",
    };
  }
  const openNames = names(o.open.map((d) => d.database));
  if (o.mode === "Keep") {
    return {
      type,
      status: false,
      reason: "IsolationKept",
      message: `spec.isolation is Keep: PUBLIC, and so every role dbtether creates, can connect ` +
        `to ${openNames}`,
    };
  }
  const failed = o.open.find((d) => d.reason === "RestrictFailed");
  const first = failed ?? o.open[0]!;
  const details = o.open.map((d) => d.message).filter(Boolean).join("; ");
  const advice = failed
    ? "it is retried at the next health check"
    : "the platform team can make the owner a role the admin is a member of " +
      "(ALTER DATABASE ... OWNER TO ...), or, as that owner, GRANT CONNECT to the roles that " +
      "use it and REVOKE CONNECT ... FROM PUBLIC, or set spec.isolation to Keep to accept it";
  return {
    type,
    status: false,
    reason: first.reason,
    message: `${details}. PUBLIC, and so every role dbtether creates, can connect to ` +
      `${openNames}; ${advice}`,
  };
}

const KEPT: ReadonlySet<string> = new Set(["IsolationKept"]);

/**
 * Whether the Isolated condition changed in a way worth an Event (status or reason), comparing
 * the status before a check with the one written after it.
 */
export function isolationTransition(
  before: DBClusterStatus | undefined,
  after: DBClusterStatus,
): ConditionEvent | undefined {
  // Each restriction has its own Event; IsolationKept is what the platform team asked for.
  if (getCondition(after.conditions, "Isolated")?.status === "True") return undefined;
  return conditionEvent(before?.conditions, after.conditions, "Isolated", KEPT);
}
