/**
 * The reasons of a Database's Ready condition, in a module of their own: the planner, the status
 * and the reconciler all name them, and the planner and the status import each other's helpers.
 */
import { API_REASONS } from "../../lib/errors.ts";
import { type Failure, failureIn } from "../runtime/failure.ts";
import { SERVER_WORK_REASONS } from "../services/reasons.ts";

/**
 * Reasons of the Ready condition, declared once: this kind's own, the DBCluster's resolver, the
 * SQL module's failures and refusals, the API's errors, and `Error` for anything unexpected.
 */
export const READY_REASONS = [
  "DatabaseReady",
  "Reconciling",
  "Deleting",
  "ExtensionFailed",
  "InvalidName",
  "Observed",
  "OutOfSync",
  ...SERVER_WORK_REASONS,
  ...API_REASONS,
  "Error",
] as const;

/** A reason of a Database's Ready condition. */
export type DatabaseReason = typeof READY_REASONS[number];

/** Why a Database is not Ready. */
export type DatabaseFailure = Failure<DatabaseReason>;

/** The one mapping of a thrown value to a Database's reason; an undeclared one is `Error`. */
export const databaseFailure: (e: unknown) => DatabaseFailure = failureIn(READY_REASONS, "Error");
