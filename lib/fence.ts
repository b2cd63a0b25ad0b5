/**
 * The fence every side effect passes: each SQL statement (postgres/pool.ts), each Kubernetes
 * write (kube.ts) and each long job (backup/runner.ts) asks it first, and its signal cancels what
 * is in flight. With leader election the fence is open only while this replica may still hold the
 * lease *by its own clocks*: from the moment it last sent a renewal that succeeded, for
 * renewDeadline. Another replica takes over only after leaseDuration (> renewDeadline) has passed
 * on its clock since it saw that renewal, so a replica that stops at its fence never overlaps
 * with its successor, even after being frozen (SIGSTOP, a paused VM): the check compares clocks,
 * it does not wait for a timer that a frozen process has not run yet.
 */
import type { Clock } from "./clock.ts";
import { RetryableError } from "./errors.ts";

/** Side effects were refused or cancelled because this replica does not lead (any longer). */
export class LeadershipLostError extends RetryableError {
  override name = "LeadershipLostError";
  constructor(message: string) {
    super("LeadershipLost", message);
  }
}

/** Whether this process may cause side effects now. */
export interface Fence {
  /** Throws {@link LeadershipLostError} unless side effects are allowed at this instant. */
  check(): void;
  /** Aborts, with a LeadershipLostError, once side effects must stop; never reopens. */
  readonly signal: AbortSignal;
}

/** The fence of a process without leader election: always open. */
export const OPEN_FENCE: Fence = Object.freeze({
  check() {},
  signal: new AbortController().signal,
});

/** One instant on both clocks: the wall clock can be stepped back, the monotonic one can stop. */
export interface Stamp {
  wall: number;
  mono: number;
}

export interface LeaseFenceOptions {
  clock: Clock;
  /** How long a successful renewal keeps the fence open: the renew deadline. */
  validForMs: number;
  /** Monotonic milliseconds; default `performance.now()`. */
  monotonic?: () => number;
}

/**
 * The fence of a leader-elected replica. Closed while standing by (nothing should write then),
 * open for `validForMs` after each renewal sent at a {@link Stamp}, closed for good once that
 * time has passed or {@link close} was called.
 */
export class LeaseFence implements Fence {
  readonly #o: Required<LeaseFenceOptions>;
  readonly #ctl = new AbortController();
  #since: Stamp | undefined;
  #disarm: (() => void) | undefined;

  constructor(opts: LeaseFenceOptions) {
    this.#o = { monotonic: () => performance.now(), ...opts };
  }

  get signal(): AbortSignal {
    return this.#ctl.signal;
  }

  /** Whether the fence was closed for good. */
  get closed(): boolean {
    return this.#ctl.signal.aborted;
  }

  /** Now, on both clocks: take it right before sending a renewal. */
  stamp(): Stamp {
    return { wall: this.#o.clock.now(), mono: this.#o.monotonic() };
  }

  /** A renewal sent at `sent` succeeded: the fence is open until `sent` + validForMs. */
  renewed(sent: Stamp): void {
    if (this.closed) return;
    if (this.#since && sent.mono < this.#since.mono) return;
    this.#since = sent;
    this.#arm();
  }

  /** Milliseconds the fence stays open without another renewal (0 when closed). */
  remainingMs(): number {
    if (this.closed || !this.#since) return 0;
    const { clock, monotonic, validForMs } = this.#o;
    // The larger elapsed time of the two clocks: a wall clock stepped back or a monotonic
    // clock that stood still during a suspend must not extend the lease.
    const elapsed = Math.max(clock.now() - this.#since.wall, monotonic() - this.#since.mono);
    return Math.max(0, validForMs - elapsed);
  }

  check(): void {
    if (this.remainingMs() > 0) return;
    this.#expire();
    throw this.closed
      ? this.#ctl.signal.reason
      : new LeadershipLostError("Cannot act: this replica does not hold the leader lease");
  }

  /** Closes the fence for good and aborts its signal (in-flight side effects are cancelled). */
  close(why: string): void {
    if (this.closed) return;
    this.#disarm?.();
    this.#ctl.abort(new LeadershipLostError(`Stopped acting: ${why}`));
  }

  // Closes the fence when it expires while the process runs, so in-flight statements are
  // cancelled on time; the clock comparison in check() covers a process that was frozen.
  #arm(): void {
    this.#disarm?.();
    this.#disarm = this.#o.clock.setTimer(this.remainingMs(), () => {
      if (this.remainingMs() > 0) this.#arm();
      else this.#expire();
    });
  }

  #expire(): void {
    if (this.#since && !this.closed) {
      this.close(`the leader lease was not renewed within ${this.#o.validForMs} ms`);
    }
  }
}
