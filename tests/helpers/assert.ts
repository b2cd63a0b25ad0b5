/**
 * THE assertion module of every test (jsr:@std/assert is unreachable here). Names and argument
 * order follow @std/assert; each assertion is built on node:assert/strict so that a failure
 * prints the same diff node:assert prints.
 *
 * ```ts
 * import { assert, assertEquals, assertMatch, assertThrows } from "../tests/helpers/assert.ts";
 * assertEquals(plan(observed), [{ kind: "create", name: "orders" }]);
 * assertMatch(assertThrows(() => ident(""), InvalidIdentifierError).message, /empty/);
 * ```
 *
 * The node:assert/strict equivalents, for migrating a test without changing what it checks:
 * `deepStrictEqual`/`deepEqual` → {@link assertEquals}, `notDeepStrictEqual` →
 * {@link assertNotEquals}, `strictEqual`/`equal` → {@link assertStrictEquals},
 * `notStrictEqual`/`notEqual` → {@link assertNotStrictEquals}, `ok` → {@link assert}, `match` →
 * {@link assertMatch}, `throws`/`rejects` → {@link assertThrows}/{@link assertRejects}.
 */
import nodeAssert from "node:assert/strict";

/** Fails unless `actual` and `expected` are deeply equal (node's `deepStrictEqual`). */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (msg === undefined) nodeAssert.deepStrictEqual(actual, expected);
  else nodeAssert.deepStrictEqual(actual, expected, msg);
}

/** Fails when `actual` and `expected` are deeply equal (node's `notDeepStrictEqual`). */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  if (msg === undefined) nodeAssert.notDeepStrictEqual(actual, expected);
  else nodeAssert.notDeepStrictEqual(actual, expected, msg);
}

/**
 * Fails unless `actual` is `expected` by `Object.is` (node's `strictEqual`): the same primitive
 * value, or the very same object.
 */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  if (msg === undefined) nodeAssert.strictEqual(actual, expected);
  else nodeAssert.strictEqual(actual, expected, msg);
}

/** Fails when `actual` is `expected` by `Object.is` (node's `notStrictEqual`). */
export function assertNotStrictEquals<T>(actual: T, expected: T, msg?: string): void {
  if (msg === undefined) nodeAssert.notStrictEqual(actual, expected);
  else nodeAssert.notStrictEqual(actual, expected, msg);
}

/** Fails unless `actual` matches `expected` (node's `match`). */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (msg === undefined) nodeAssert.match(actual, expected);
  else nodeAssert.match(actual, expected, msg);
}

/**
 * Fails unless `cond` is truthy (node's `ok`, not wrapped: without `msg`, the failure quotes the
 * asserting expression, which node:assert reads from the caller's line).
 */
export const assert: (cond: unknown, msg?: string) => asserts cond = nodeAssert.ok as (
  cond: unknown,
  msg?: string,
) => asserts cond;

/** The old name of {@link assert}; kept for the files that still import it. */
export function assert_(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E> = abstract new (...args: any[]) => E;

function check<E extends Error>(
  e: unknown,
  o: { cls: ErrorClass<E> | undefined; includes: string | undefined; suffix: string },
): E {
  if (o.cls && !(e instanceof o.cls)) {
    throw new Error(
      `Expected ${o.cls.name}, got: ${e instanceof Error ? e.stack : String(e)}${o.suffix}`,
    );
  }
  if (o.includes !== undefined && !(e as Error).message.includes(o.includes)) {
    throw new Error(
      `Expected message to include "${o.includes}", got: ${(e as Error).message}${o.suffix}`,
    );
  }
  return e as E;
}

/**
 * Fails unless `fn` throws; with `cls`, an instance of it; with `includes`, an error whose
 * message contains that text. `msg` is added to the failure. Returns the error, for further
 * checks.
 */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  cls?: ErrorClass<E>,
  includes?: string,
  msg?: string,
): E {
  const suffix = msg === undefined ? "" : `: ${msg}`;
  try {
    fn();
  } catch (e) {
    return check(e, { cls, includes, suffix });
  }
  throw new Error(`Expected function to throw${suffix}`);
}

/** {@link assertThrows} for a promise: fails unless the one `fn` returns rejects. */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  cls?: ErrorClass<E>,
  includes?: string,
  msg?: string,
): Promise<E> {
  const suffix = msg === undefined ? "" : `: ${msg}`;
  try {
    await fn();
  } catch (e) {
    return check(e, { cls, includes, suffix });
  }
  throw new Error(`Expected promise to reject${suffix}`);
}
