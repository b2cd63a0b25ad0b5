/**
 * One error model for the whole program. Every domain error extends {@link DbtetherError}: it
 * carries a CamelCase `reason` (what a status condition shows), whether retrying can help
 * (`terminal`), and the `cause` it wraps. API and driver failures are mapped once, at the
 * adapter, into these types, so callers branch on classes and reasons, never on codes or on
 * error names compared as strings. `controllers/runtime/failure.ts` turns any thrown value into
 * a status reason.
 */

/** How an error is built: the wrapped cause, and whether retrying cannot help. */
export interface FailureOptions {
  cause?: unknown;
  /** True when only a change of the object's spec can fix it (bad input). Default false. */
  terminal?: boolean;
}

/** The base of every dbtether error. */
export class DbtetherError<R extends string = string> extends Error {
  override name = "DbtetherError";
  readonly reason: R;
  readonly terminal: boolean;
  constructor(reason: R, message: string, opts: FailureOptions = {}) {
    super(message, "cause" in opts ? { cause: opts.cause } : undefined);
    this.reason = reason;
    this.terminal = opts.terminal ?? false;
  }
}

/** A failure that retrying cannot fix until the object's spec changes (bad input). */
export class TerminalError<R extends string = string> extends DbtetherError<R> {
  override name = "TerminalError";
  constructor(reason: R, message: string, options?: ErrorOptions) {
    super(reason, message, { ...options, terminal: true });
  }
}

/** A failure worth retrying with backoff, with a CamelCase reason for status. */
export class RetryableError<R extends string = string> extends DbtetherError<R> {
  override name = "RetryableError";
  constructor(reason: R, message: string, options?: ErrorOptions) {
    super(reason, message, { ...options, terminal: false });
  }
}

/** The Kubernetes API answered 404. */
/** The reasons of the API errors below, as a status records them. */
export const API_REASONS = ["NotFound", "Conflict", "Gone", "Forbidden", "AlreadyExists"] as const;
/** The reason of an API error. */
export type ApiReason = typeof API_REASONS[number];

export class NotFoundError extends DbtetherError<"NotFound"> {
  override name = "NotFoundError";
  constructor(message: string, options?: ErrorOptions) {
    super("NotFound", message, { ...options });
  }
}
/** The Kubernetes API answered 409 because the object changed (a stale resourceVersion). */
export class ConflictError extends DbtetherError<"Conflict"> {
  override name = "ConflictError";
  constructor(message: string, options?: ErrorOptions) {
    super("Conflict", message, { ...options });
  }
}
/** The Kubernetes API answered 410: the watch's resourceVersion is too old. */
export class GoneError extends DbtetherError<"Gone"> {
  override name = "GoneError";
  constructor(message: string, options?: ErrorOptions) {
    super("Gone", message, { ...options });
  }
}
/** The Kubernetes API answered 403: our RBAC does not allow the request. */
export class ForbiddenError extends DbtetherError<"Forbidden"> {
  override name = "ForbiddenError";
  constructor(message: string, options?: ErrorOptions) {
    super("Forbidden", message, { ...options });
  }
}
/** The Kubernetes API answered 409 AlreadyExists to a create. */
export class AlreadyExistsError extends DbtetherError<"AlreadyExists"> {
  override name = "AlreadyExistsError";
  constructor(message: string, options?: ErrorOptions) {
    super("AlreadyExists", message, { ...options });
  }
}

/** The message of any thrown value. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
