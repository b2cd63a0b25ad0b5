/**
 * The bounded worker pool of backups and restores: a global limit and a per-cluster limit.
 *
 * Waiters are served first-come first-served among those that *can* run: a waiter whose cluster
 * is at its limit does not block waiters of other clusters behind it (no head-of-line blocking),
 * but it keeps its place and runs before any later waiter of its own cluster.
 */
import { type Clock, systemClock } from "../lib/clock.ts";

/** Options of {@link BackupLimiter}. */
export interface LimiterOptions {
  /** At most this many run at once in the process (`--max-concurrent-backups`); default 2. */
  global?: number;
  /** At most this many run at once per DBCluster; default 3. */
  perCluster?: number;
  clock?: Clock;
}

/** A held slot. Releasing twice is harmless. */
export interface Lease extends Disposable {
  release(): void;
}

/** Where a job stands: running, or waiting at a 1-based position in the queue. */
export type LimiterPosition =
  | { state: "running"; since: number }
  | { state: "waiting"; position: number; since: number };

interface Waiter {
  id: string;
  cluster: string;
  since: number;
  grant: (lease: Lease) => void;
  onAbort?: () => void;
  signal?: AbortSignal;
}

export const DEFAULT_GLOBAL_LIMIT = 2;
export const DEFAULT_PER_CLUSTER_LIMIT = 3;

export class BackupLimiter {
  readonly global: number;
  readonly perCluster: number;
  #clock: Clock;
  #queue: Waiter[] = [];
  #running = new Map<string, { cluster: string; since: number }>();
  #perCluster = new Map<string, number>();

  constructor(opts: LimiterOptions = {}) {
    this.global = positive(opts.global ?? DEFAULT_GLOBAL_LIMIT, "global");
    this.perCluster = positive(opts.perCluster ?? DEFAULT_PER_CLUSTER_LIMIT, "perCluster");
    this.#clock = opts.clock ?? systemClock;
  }

  /**
   * Waits for a slot for job `id` of `cluster`. Rejects with the signal's reason when it aborts
   * while waiting (the job then leaves the queue). Ids must be unique among live jobs.
   */
  acquire(cluster: string, opts: { id: string; signal?: AbortSignal }): Promise<Lease> {
    const { id, signal } = opts;
    if (this.#running.has(id) || this.#queue.some((w) => w.id === id)) {
      return Promise.reject(new Error(`Cannot queue backup job "${id}": it is already queued`));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Lease>((resolve, reject) => {
      const w: Waiter = { id, cluster, since: this.#clock.now(), grant: resolve };
      if (signal) {
        w.signal = signal;
        w.onAbort = () => {
          this.#queue = this.#queue.filter((x) => x !== w);
          reject(signal.reason);
          // A waiter leaving can unblock nobody, but keep the invariant simple.
          this.#dispatch();
        };
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      this.#queue.push(w);
      this.#dispatch();
    });
  }

  /** Where job `id` stands, or undefined when it is neither running nor waiting. */
  position(id: string): LimiterPosition | undefined {
    const r = this.#running.get(id);
    if (r) return { state: "running", since: r.since };
    const i = this.#queue.findIndex((w) => w.id === id);
    const w = this.#queue[i];
    return w ? { state: "waiting", position: i + 1, since: w.since } : undefined;
  }

  /** Counts, for metrics. */
  stats(): { running: number; waiting: number } {
    return { running: this.#running.size, waiting: this.#queue.length };
  }

  #dispatch(): void {
    for (let i = 0; i < this.#queue.length && this.#running.size < this.global;) {
      const w = this.#queue[i]!;
      if ((this.#perCluster.get(w.cluster) ?? 0) >= this.perCluster) {
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
      this.#running.set(w.id, { cluster: w.cluster, since: this.#clock.now() });
      this.#perCluster.set(w.cluster, (this.#perCluster.get(w.cluster) ?? 0) + 1);
      w.grant(this.#lease(w.id, w.cluster));
    }
  }

  #lease(id: string, cluster: string): Lease {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#running.delete(id);
      const n = (this.#perCluster.get(cluster) ?? 1) - 1;
      if (n <= 0) this.#perCluster.delete(cluster);
      else this.#perCluster.set(cluster, n);
      this.#dispatch();
    };
    return { release, [Symbol.dispose]: release };
  }
}

function positive(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Invalid ${name} concurrency limit ${n}: must be a positive integer`);
  }
  return n;
}
