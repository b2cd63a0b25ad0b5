/**
 * The reasons of a Restore's Ready condition, in a module of their own: the planner, the status
 * functions and the job all name them, and none of those may import another in a circle.
 */

/** Reasons of a Restore's Ready condition, declared once. */
export type RestoreReason =
  | "Completed"
  | "Running"
  | "WaitingForSlot"
  | "Interrupted"
  | "BackupNotFound"
  | "BackupNotCompleted"
  | "BackupFailed"
  | "InvalidSource"
  | "StorageNotFound"
  | "DatabaseNotFound"
  | "DatabaseNotReady"
  | "NamespaceNotAllowed"
  | "ClusterNotReady"
  | "TargetNotEmpty"
  | "TargetNotFound"
  | "TargetBusy"
  | "ScratchDatabaseTaken"
  | "RetriesExhausted"
  | "GrantsFailed"
  // Whether the dump may be used at all (trust.ts).
  | "BackupNotSigned"
  | "SignatureInvalid"
  | "CrossNamespaceRestoreNotAllowed"
  // The engine's reasons (backup/errors.ts).
  | "RestoreFailed"
  | "ChecksumMismatch"
  | "StorageFailed"
  | "Aborted"
  | "ToolNotFound"
  | "ToolTooOld"
  | "InvalidOptions";
