/**
 * Holds off connection attempts to a server whose last attempt timed out (issue 13, fairness).
 *
 * A server that accepts TCP and never answers makes every connect wait out the whole connect
 * timeout, and a reconcile waiting there holds one of its controller's few workers. Ten
 * Databases on such a server kept both Database workers busy and made the Databases of healthy
 * servers wait (2.6 times slower in tests/verify/fairness_test.ts). After a timeout, runs fail
 * at once with that timeout's error for a hold-off period, and then a single run tries again
 * while the others keep failing at once; a success ends the hold-off. Only timeouts count: a
 * refused connection fails fast by itself.
 */

/** Whether a driver error is postgres.js's connect timeout. */
export function isConnectTimeout(e: unknown): boolean {
  return typeof e === "object" && e !== null && "code" in e && e.code === "CONNECT_TIMEOUT";
}

/** The hold-off state of one pool; `now` is injected so the rules are testable. */
export class ConnectHoldOff {
  readonly #holdMs: number;
  readonly #now: () => number;
  #error: unknown = undefined;
  #until = 0;
  #trying = false;

  /** `holdMs`: how long after a timeout no run may connect. */
  constructor(holdMs: number, now: () => number = Date.now) {
    this.#holdMs = holdMs;
    this.#now = now;
  }

  /**
   * Called before a run connects: throws the last timeout's error while holding off (or while
   * another run is already trying again); otherwise returns whether this run is the one trying.
   */
  admit(): boolean {
    if (this.#error === undefined) return false;
    if (this.#trying || this.#now() < this.#until) throw this.#error;
    this.#trying = true;
    return true;
  }

  /** The last connect timeout's error, while no connect has succeeded since. */
  get lastTimeout(): unknown {
    return this.#error;
  }

  /** Records how a run's connect ended (`error` undefined: connected). */
  settle(trying: boolean, error?: unknown): void {
    if (trying) this.#trying = false;
    if (error === undefined) {
      this.#error = undefined;
    } else if (isConnectTimeout(error)) {
      this.#error = error;
      this.#until = this.#now() + this.#holdMs;
    }
  }
}
