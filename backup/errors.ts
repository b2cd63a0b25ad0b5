/**
 * Typed failures of backups and restores, with CamelCase reasons for status conditions. Both
 * jobs fail the same ways around their tools and the storage ({@link jobFailures} builds those
 * errors for either), and each has a few reasons of its own.
 */

import { DbtetherError, errorMessage } from "../lib/errors.ts";
import { StorageError } from "../storage/store.ts";
import { ToolFailedError, ToolNotFoundError, ToolTooOldError } from "./pg_tools.ts";

/** How a backup and a restore both fail. */
type JobFailureReason =
  /** The storage backend refused or failed the transfer, or the manifest's. */
  | "StorageFailed"
  /** Cancelled through the signal (process shutdown, the object deleted). */
  | "Aborted"
  /** No client tool that can serve this server version. */
  | "ToolNotFound"
  /**
   * Only tools older than the server's major (pg_dump refuses a newer server), or, restoring a
   * plain dump, a psql without `\restrict`.
   */
  | "ToolTooOld"
  /** Bad key, level or format: retrying will not help. */
  | "InvalidOptions";

export type BackupFailureReason =
  | JobFailureReason
  /** pg_dump failed to connect, errored, or was killed; `stderr` has its last lines. */
  | "DumpFailed"
  /** The manifest could not be signed (the signing key is unreadable or invalid). */
  | "SigningFailed"
  /**
   * The storage took no bytes of the upload, or did not answer, for `--backup-stall-timeout`
   * (storage/stall_guard.ts); retried like StorageFailed.
   */
  | "StorageStalled";

export type RestoreFailureReason =
  | JobFailureReason
  /** psql or pg_restore failed; nothing was committed. */
  | "RestoreFailed"
  /** The stored bytes do not match the manifest's SHA-256 (or the gzip data is corrupt). */
  | "ChecksumMismatch"
  /** No dump or no manifest at the key (an incomplete backup has no manifest). */
  | "BackupNotFound";

/** Options of a {@link JobError}. */
export interface JobErrorOptions {
  /** The tool's last stderr lines, redacted. */
  stderr?: string[];
  cause?: unknown;
}

/**
 * A failed backup or restore. `message` and `stderr` are redacted and safe for status and
 * Events. Only InvalidOptions is terminal: the rest can heal without a change of the spec.
 */
export abstract class JobError<R extends BackupFailureReason | RestoreFailureReason>
  extends DbtetherError<R> {
  readonly stderr: string[];
  constructor(reason: R, message: string, opts: JobErrorOptions = {}) {
    const cause = "cause" in opts ? { cause: opts.cause } : {};
    super(reason, message, { ...cause, terminal: reason === "InvalidOptions" });
    this.stderr = opts.stderr ?? [];
  }
}

/** A failed backup. */
export class BackupError extends JobError<BackupFailureReason> {
  override name = "BackupError";
}

/** A failed restore. */
export class RestoreError extends JobError<RestoreFailureReason> {
  override name = "RestoreError";
}

/** The errors {@link jobFailures} builds for one job. */
export interface JobFailures<E> {
  /** `<Job> aborted: <why>`. */
  aborted(signal: AbortSignal): E;
  /** `<what>: <the storage failure>`, wrapping it. */
  storageFailed(what: string, e: unknown): E;
  /**
   * Any failure as this job's error: its own errors as they are, then Aborted when the signal
   * fired, ToolNotFound, ToolTooOld, or the job's fallback reason (with a failed tool's stderr).
   */
  from(e: unknown, signal: AbortSignal | undefined): E;
}

/** Builds the errors both jobs share with `cls`, a job's error class. */
export function jobFailures<F extends BackupFailureReason | RestoreFailureReason, E extends Error>(
  cls: new (reason: JobFailureReason | F, message: string, opts?: JobErrorOptions) => E,
  job: { name: "Backup" | "Restore"; fallback: F },
): JobFailures<E> {
  const aborted = (signal: AbortSignal) =>
    new cls("Aborted", `${job.name} aborted: ${abortReason(signal)}`);
  return {
    aborted,
    storageFailed: (what, e) =>
      new cls("StorageFailed", `${what}: ${storageDetail(e)}`, { cause: e }),
    from(e, signal) {
      if (e instanceof cls) return e;
      if (signal?.aborted) return aborted(signal);
      const reason = e instanceof ToolNotFoundError
        ? "ToolNotFound"
        : e instanceof ToolTooOldError
        ? "ToolTooOld"
        : job.fallback;
      const stderr = e instanceof ToolFailedError && e.stderr ? e.stderr.split("\n") : [];
      return new cls(reason, errorMessage(e), { stderr });
    },
  };
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
