/**
 * The few assertions the backup tests need (jsr:@std/assert is unreachable here); built on
 * node:assert so failures print a diff.
 */
import assert from "node:assert/strict";

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (msg === undefined) assert.deepStrictEqual(actual, expected);
  else assert.deepStrictEqual(actual, expected, msg);
}

export function assert_(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}
export { assert_ as assert };

// deno-lint-ignore no-explicit-any
type ErrorClass<E> = abstract new (...args: any[]) => E;

function check<E extends Error>(e: unknown, cls?: ErrorClass<E>, includes?: string): E {
  if (cls && !(e instanceof cls)) {
    throw new Error(`Expected ${cls.name}, got: ${e instanceof Error ? e.stack : String(e)}`);
  }
  if (includes !== undefined && !(e as Error).message.includes(includes)) {
    throw new Error(`Expected message to include "${includes}", got: ${(e as Error).message}`);
  }
  return e as E;
}

export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  cls?: ErrorClass<E>,
  includes?: string,
): E {
  try {
    fn();
  } catch (e) {
    return check(e, cls, includes);
  }
  throw new Error("Expected function to throw");
}

export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  cls?: ErrorClass<E>,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    return check(e, cls, includes);
  }
  throw new Error("Expected promise to reject");
}

/** Asserts that `actual` and `expected` are the same value (Object.is), not only alike. */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  if (msg === undefined) assert.strictEqual(actual, expected);
  else assert.strictEqual(actual, expected, msg);
}

/** Asserts that `actual` matches `expected`. */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (msg === undefined) assert.match(actual, expected);
  else assert.match(actual, expected, msg);
}
