/**
 * The one place a thrown value becomes a status reason. Reconcilers catch, call
 * {@link failureOf}, record the result in status and Events, and let the runtime retry unless it
 * is terminal. Domain errors (lib/errors.ts) carry their own reason; anything else is an
 * unexpected failure and retried.
 */
import { DbtetherError, errorMessage } from "../../lib/errors.ts";

/** What a failed reconcile records. */
export interface Failure<R extends string = string> {
  /** CamelCase reason for the Ready condition and the Event. */
  reason: R;
  /** The error's message (already redacted by whoever built it). */
  message: string;
  /** Whether retrying cannot help until the spec changes. */
  terminal: boolean;
}

export interface FailureOfOptions<R extends string> {
  /** The reason of a value that is not a DbtetherError (default `Error`). */
  fallback?: R;
  /**
   * Reasons a kind names more precisely than the module that threw: DatabaseUser reports the
   * SQL module's `InvalidName` as `InvalidUsername`.
   */
  rename?: Readonly<Partial<Record<string, R>>>;
}

/** Maps any thrown value to the reason, message and retry decision a status records. */
export function failureOf<R extends string = string>(
  e: unknown,
  opts: FailureOfOptions<R> = {},
): Failure<R | string> {
  if (e instanceof DbtetherError) {
    return {
      reason: opts.rename?.[e.reason] ?? e.reason,
      message: e.message,
      terminal: e.terminal,
    };
  }
  return { reason: opts.fallback ?? "Error", message: errorMessage(e), terminal: false };
}

/**
 * The closed mapping of one kind: a reason in `known` is kept, any other (an error this kind
 * does not expect) becomes `fallback` with the error's message.
 */
export function failureIn<const R extends string>(
  known: readonly R[],
  fallback: NoInfer<R>,
): (e: unknown) => Failure<R> {
  const set: ReadonlySet<string> = new Set(known);
  return (e) => {
    const f = failureOf(e, { fallback });
    return set.has(f.reason) ? f as Failure<R> : { ...f, reason: fallback };
  };
}
