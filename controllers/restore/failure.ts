/**
 * Pure: what a failed restore run records. The one place a thrown value becomes a Restore
 * reason; DbtetherErrors go through failureOf (controllers/runtime/failure.ts) and the result is
 * narrowed to the closed {@link RestoreReason} union.
 */
import { RestoreError } from "../../backup/errors.ts";
import { StorageError } from "../../storage/store.ts";
import { TerminalError } from "../../lib/errors.ts";
import { failureOf } from "../runtime/failure.ts";
import type { RestoreReason } from "./reasons.ts";
import type { TrustReason } from "./trust.ts";

/** Why a step of the job refused to go on (the dump may not be used, grants failed). */
export type StepReason = TrustReason | "RestoreFailed" | "GrantsFailed";

/** A step's refusal: terminal, with a Restore reason of its own. */
export class StepError extends TerminalError<StepReason> {
  override name = "StepError";
}

/** Reasons a terminal error keeps: the target refusals of restore_target.ts, and the steps'. */
const TERMINAL_REASONS: ReadonlySet<string> = new Set<RestoreReason>([
  "TargetNotEmpty",
  "TargetNotFound",
  "ScratchDatabaseTaken",
  "RestoreFailed",
  "GrantsFailed",
  "BackupNotSigned",
  "SignatureInvalid",
  "CrossNamespaceRestoreNotAllowed",
]);

/** The reason and message of a failed run; ClusterNotReady means "retry", not "failed". */
export function restoreFailure(e: unknown): { reason: RestoreReason; message: string } {
  // The engine's errors carry Restore reasons already.
  if (e instanceof RestoreError) return { reason: e.reason, message: e.message };
  if (e instanceof StorageError) {
    return { reason: "StorageFailed", message: `Cannot use the backup storage: ${e.message}` };
  }
  const f = failureOf(e);
  if (f.terminal) {
    const reason = TERMINAL_REASONS.has(f.reason) ? f.reason as RestoreReason : "RestoreFailed";
    return { reason, message: f.message };
  }
  if (f.reason === "ClusterUnreachable") return { reason: "ClusterNotReady", message: f.message };
  return { reason: "RestoreFailed", message: `Restore failed: ${f.message}` };
}
