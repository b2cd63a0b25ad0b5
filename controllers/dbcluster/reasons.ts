/**
 * The reasons of a DBCluster's Ready condition, in a module of their own: the status, the
 * planner's Events and the reconciler all name them.
 */
import { API_REASONS } from "../../lib/errors.ts";
import { PG_FAILURE_REASONS } from "../postgres/execute.ts";
import { type Failure, failureIn } from "../runtime/failure.ts";
import { RESOLVER_REASONS } from "../services/resolver.ts";

/**
 * Why a health check failed, declared once: the resolver's reasons (credentials, CA), the SQL
 * module's failures, the API's errors, and `CheckFailed` for anything unexpected.
 */
export const CHECK_FAILURES = [
  ...RESOLVER_REASONS,
  ...PG_FAILURE_REASONS,
  ...API_REASONS,
  "LeadershipLost",
  "CheckFailed",
] as const;

/** A reason of {@link CHECK_FAILURES}. */
export type CheckFailureReason = typeof CHECK_FAILURES[number];

/** Reasons of the Ready condition: `Connected`, or why the last check failed. */
export type ClusterReason = "Connected" | CheckFailureReason;

/** The one mapping of a failed health check to its reason; an undeclared one is `CheckFailed`. */
export const checkFailure: (e: unknown) => Failure<CheckFailureReason> = failureIn(
  CHECK_FAILURES,
  "CheckFailed",
);
