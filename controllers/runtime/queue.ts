/**
 * A work queue of keys, shaped like client-go's: a key is queued at most once, handed to one
 * worker at a time (a key added while being processed is queued again when the worker is
 * done), retried with per-key capped exponential backoff, and re-added after a delay.
 */
import type { Clock } from "../../lib/clock.ts";

export interface QueueOptions {
  clock: Clock;
  /** First retry delay after a failure. */
  baseDelayMs?: number;
  /** Retry delays never grow beyond this. */
  maxDelayMs?: number;
  /** Called whenever the number of waiting keys changes (for the depth gauge). */
  onDepth?: (depth: number) => void;
}

export class WorkQueue {
  readonly #clock: Clock;
  readonly #base: number;
  readonly #max: number;
  readonly #onDepth: (n: number) => void;
  #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #delayed = new Map<string, { at: number; cancel: () => void }>();
  #waiters: ((key: string | undefined) => void)[] = [];
  #shutdown = false;

  constructor(opts: QueueOptions) {
    this.#clock = opts.clock;
    this.#base = opts.baseDelayMs ?? 500;
    this.#max = opts.maxDelayMs ?? 300_000;
    this.#onDepth = opts.onDepth ?? (() => {});
  }

  /** Queues a key now (deduplicated). */
  add(key: string): void {
    if (this.#shutdown) return;
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#processing.add(key);
      waiter(key);
      return;
    }
    this.#queued.add(key);
    this.#queue.push(key);
    this.#onDepth(this.#queue.length);
  }

  /** Queues a key after `ms`; an earlier pending deadline for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shutdown) return;
    if (ms <= 0) return this.add(key);
    const at = this.#clock.now() + ms;
    const pending = this.#delayed.get(key);
    if (pending && pending.at <= at) return;
    pending?.cancel();
    const cancel = this.#clock.setTimer(ms, () => {
      this.#delayed.delete(key);
      this.add(key);
    });
    this.#delayed.set(key, { at, cancel });
  }

  /** Records a failure and re-queues the key after its backoff; returns the delay. */
  addRateLimited(key: string): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    const delay = this.backoffFor(n);
    this.addAfter(key, delay);
    return delay;
  }

  /** The delay after the (n+1)th consecutive failure. */
  backoffFor(n: number): number {
    return Math.min(this.#max, this.#base * 2 ** Math.min(n, 30));
  }

  /** Clears the failure count of a key (after a success or a terminal error). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key, waiting until one is available; undefined once shut down. */
  get(): Promise<string | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#queued.delete(key);
      this.#processing.add(key);
      this.#onDepth(this.#queue.length);
      return Promise.resolve(key);
    }
    if (this.#shutdown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Marks a key processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  get length(): number {
    return this.#queue.length;
  }

  /** Stops handing out keys; waiting workers receive undefined. */
  shutDown(): void {
    this.#shutdown = true;
    for (const d of this.#delayed.values()) d.cancel();
    this.#delayed.clear();
    for (const w of this.#waiters) w(undefined);
    this.#waiters = [];
    this.#queue = [];
    this.#queued.clear();
  }
}
