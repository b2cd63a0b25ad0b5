/**
 * The reasons of a PostgresDatabase's Ready condition, in a module of their own: the planner, the
 * status and the reconciler all name them.
 */
import { API_REASONS } from "../../lib/errors.ts";
import { type Failure, failureIn } from "../runtime/failure.ts";
import { SERVER_WORK_REASONS } from "../services/reasons.ts";

/**
 * Reasons of the Ready condition, declared once: this kind's own (the Secret, the server from
 * the environment, the password check), the DBCluster's resolver, the SQL module's failures and
 * refusals, the API's errors, and `Error` for anything unexpected.
 */
export const READY_REASONS = [
  "Ready",
  "Reconciling",
  "Deleting",
  "InvalidName",
  "SecretExistsUnmanaged",
  "SecretOwnedByOther",
  "ServerNotConfigured",
  "PasswordVerificationFailed",
  ...SERVER_WORK_REASONS,
  ...API_REASONS,
  "Error",
] as const;

/** A reason of a PostgresDatabase's Ready condition. */
export type PgdbReason = typeof READY_REASONS[number];

/** Why a PostgresDatabase is not Ready. */
export type PgdbFailure = Failure<PgdbReason>;

/** The one mapping of a thrown value to a PostgresDatabase's reason; an undeclared one is `Error`. */
export const pgdbFailure: (e: unknown) => PgdbFailure = failureIn(READY_REASONS, "Error");
