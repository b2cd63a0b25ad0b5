/** Typed failures of backups and restores, with CamelCase reasons for status conditions. */

import { errorMessage } from "../lib/errors.ts";
import { StorageError } from "../storage/store.ts";

export type BackupFailureReason =
  /** pg_dump failed to connect, errored, or was killed; `stderr` has its last lines. */
  | "DumpFailed"
  /** The storage backend refused or failed the upload, or the manifest write. */
  | "StorageFailed"
  /** Cancelled through the signal (process shutdown, Backup deleted). */
  | "Aborted"
  /** No pg_dump that can dump this server version. */
  | "ToolNotFound"
  /** Bad key, level or format: retrying will not help. */
  | "InvalidOptions"
  /** The manifest could not be signed (the signing key is unreadable or invalid). */
  | "SigningFailed";

export type RestoreFailureReason =
  /** psql or pg_restore failed; nothing was committed. */
  | "RestoreFailed"
  /** The stored bytes do not match the manifest's SHA-256 (or the gzip data is corrupt). */
  | "ChecksumMismatch"
  /** No dump or no manifest at the key (an incomplete backup has no manifest). */
  | "BackupNotFound"
  | "StorageFailed"
  | "Aborted"
  | "ToolNotFound"
  /** The psql found lacks `\restrict`, without which a plain dump could run meta-commands. */
  | "ToolTooOld"
  | "InvalidOptions";

/** A failed backup. `message` and `stderr` are redacted and safe for status and Events. */
export class BackupError extends Error {
  override name = "BackupError";
  constructor(
    readonly reason: BackupFailureReason,
    message: string,
    readonly stderr: string[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A failed restore. `message` and `stderr` are redacted and safe for status and Events. */
export class RestoreError extends Error {
  override name = "RestoreError";
  constructor(
    readonly reason: RestoreFailureReason,
    message: string,
    readonly stderr: string[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** `message` followed by the tool's last stderr lines, for a one-stop error message. */
export function withStderr(message: string, stderr: string[]): string {
  return stderr.length ? `${message}: ${stderr.join(" | ")}` : message;
}

/** Why a job was cancelled, from its signal's reason. */
export function abortReason(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : "cancelled";
}

/** A storage failure's detail for a message: the StorageError reason when there is one. */
export function storageDetail(e: unknown): string {
  return e instanceof StorageError ? `${e.reason}: ${e.message}` : errorMessage(e);
}
