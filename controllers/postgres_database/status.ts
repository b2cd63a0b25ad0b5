/**
 * The status a PostgresDatabase reconcile writes: the Ready condition, its summary `phase`, the
 * Secret's name and when its password last changed.
 */
import type { PostgresDatabase, PostgresDatabaseStatus } from "../../crds/postgres_database.ts";
import {
  type ConditionEvent,
  conditionEvent,
  getCondition,
  setCondition,
} from "../runtime/conditions.ts";
import { pauseStateOf, withPause } from "../runtime/pause.ts";
import { kubeTime } from "../../lib/time.ts";
import type { PgdbReason } from "./reasons.ts";

export interface PgdbOutcome {
  failure?: { reason: PgdbReason; message: string };
  /** Every action ran. */
  converged: boolean;
  /** A new password reached the Secret at this time (ms). */
  passwordUpdatedAt?: number;
}

export function computePgdbStatus(
  p: PostgresDatabase,
  outcome: PgdbOutcome,
  opts: { now: Date },
): PostgresDatabaseStatus {
  const old = p.status ?? {};
  const generation = p.metadata.generation;
  const ready = outcome.failure
    ? { type: "Ready", status: false, ...outcome.failure }
    : outcome.converged
    ? {
      type: "Ready",
      status: true,
      reason: "Ready",
      message: `Database and role ${JSON.stringify(p.spec.name)} are ready; credentials in ` +
        `Secret ${JSON.stringify(p.spec.targetSecret.name)}`,
    }
    : { type: "Ready", status: false, reason: "Reconciling", message: "Reconciling" };
  const conditions = withPause(
    setCondition(old.conditions, ready, { generation, now: opts.now }),
    pauseStateOf(p),
    { generation, now: opts.now },
  );
  const c = getCondition(conditions, "Ready")!;
  const updated = outcome.passwordUpdatedAt === undefined
    ? old.passwordUpdatedAt
    : kubeTime(outcome.passwordUpdatedAt);
  return {
    phase: c.status === "True" ? "Ready" : c.reason === "Reconciling" ? "Pending" : "Failed",
    message: c.message,
    secretName: p.spec.targetSecret.name,
    ...(updated === undefined ? {} : { passwordUpdatedAt: updated }),
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions,
  };
}

/** The Event for a change of the Ready condition (status or reason), or undefined. */
export function readyEvent(
  before: PostgresDatabaseStatus | undefined,
  after: PostgresDatabaseStatus,
): ConditionEvent | undefined {
  return conditionEvent(before?.conditions, after.conditions, "Ready");
}
