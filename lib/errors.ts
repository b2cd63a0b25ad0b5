/**
 * Errors mapped once from API and driver failures, so callers branch on types, not codes.
 */

/** A failure that retrying cannot fix until the object's spec changes (bad input). */
export class TerminalError extends Error {
  override name = "TerminalError";
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

/** A failure worth retrying with backoff, with a CamelCase reason for status. */
export class RetryableError extends Error {
  override name = "RetryableError";
  constructor(readonly reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

export class NotFoundError extends Error {
  override name = "NotFoundError";
}
export class ConflictError extends Error {
  override name = "ConflictError";
}
export class GoneError extends Error {
  override name = "GoneError";
}
export class ForbiddenError extends Error {
  override name = "ForbiddenError";
}
export class AlreadyExistsError extends Error {
  override name = "AlreadyExistsError";
}

/** The message of any thrown value. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
