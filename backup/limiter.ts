/**
 * The bounded worker pool of backups and restores: a global limit, a per-cluster limit and a
 * per-storage limit.
 *
 * Waiters are served first-come first-served among those that *can* run: a waiter whose cluster
 * or storage is at its limit does not block waiters of other clusters or storages behind it (no
 * head-of-line blocking), but it keeps its place and runs before any later waiter of its own
 * cluster or storage. The per-storage limit defaults to one less than the global one, so a
 * storage that stops answering cannot hold every slot while its uploads wait out their stall
 * timeout: one slot stays free for the others.
 */
import { type Clock, systemClock } from "../lib/clock.ts";

/** Options of {@link BackupLimiter}. */
export interface LimiterOptions {
  /** At most this many run at once in the process (`--max-concurrent-backups`); default 2. */
  global?: number;
  /** At most this many run at once per DBCluster; default 3. */
  perCluster?: number;
  /**
   * At most this many run at once per BackupStorage (`--max-concurrent-backups-per-storage`);
   * default {@link defaultPerStorage} of the global limit.
   */
  perStorage?: number;
  clock?: Clock;
}

/** A held slot. Releasing twice is harmless. */
export interface Lease extends Disposable {
  release(): void;
}

/**
 * What a waiting job waits for: its DBCluster's or its BackupStorage's own limit when that one
 * is full (it would wait even with a free global slot), else (undefined) a global slot.
 */
export type LimitHeld = { limit: "cluster" | "storage"; name: string; running: number };

/** Where a job stands: running, or waiting at a 1-based position in the queue. */
export type LimiterPosition =
  | { state: "running"; since: number }
  | { state: "waiting"; position: number; since: number; blockedBy?: LimitHeld };

/** What a job is counted against besides the global limit. */
export interface JobPlace {
  cluster: string;
  /** The BackupStorage it writes to or reads from; absent: no per-storage limit applies. */
  storage?: string | undefined;
}

interface Waiter extends JobPlace {
  id: string;
  since: number;
  grant: (lease: Lease) => void;
  onAbort?: () => void;
  signal?: AbortSignal;
}

export const DEFAULT_GLOBAL_LIMIT = 2;
export const DEFAULT_PER_CLUSTER_LIMIT = 3;

/** The default per-storage limit: one slot fewer than the global limit, at least 1. */
export function defaultPerStorage(global: number): number {
  return Math.max(1, global - 1);
}

export class BackupLimiter {
  readonly global: number;
  readonly perCluster: number;
  readonly perStorage: number;
  #clock: Clock;
  #queue: Waiter[] = [];
  #running = new Map<string, JobPlace & { since: number }>();
  #perCluster = new Map<string, number>();
  #perStorage = new Map<string, number>();

  constructor(opts: LimiterOptions = {}) {
    this.global = positive(opts.global ?? DEFAULT_GLOBAL_LIMIT, "global");
    this.perCluster = positive(opts.perCluster ?? DEFAULT_PER_CLUSTER_LIMIT, "perCluster");
    this.perStorage = positive(opts.perStorage ?? defaultPerStorage(this.global), "perStorage");
    this.#clock = opts.clock ?? systemClock;
  }

  /**
   * Waits for a slot for job `id` of `cluster` (and of `opts.storage`). Rejects with the
   * signal's reason when it aborts while waiting (the job then leaves the queue). Ids must be
   * unique among live jobs.
   */
  acquire(
    cluster: string,
    opts: { id: string; storage?: string | undefined; signal?: AbortSignal },
  ): Promise<Lease> {
    const { id, signal, storage } = opts;
    if (this.#running.has(id) || this.#queue.some((w) => w.id === id)) {
      return Promise.reject(new Error(`Cannot queue backup job "${id}": it is already queued`));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Lease>((resolve, reject) => {
      const w: Waiter = { id, cluster, storage, since: this.#clock.now(), grant: resolve };
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
    if (!w) return undefined;
    const held = this.#held(w);
    return {
      state: "waiting",
      position: i + 1,
      since: w.since,
      ...(held ? { blockedBy: held } : {}),
    };
  }

  /** The cluster's or storage's own limit that keeps `w` waiting, if one is full. */
  #held(w: Waiter): LimitHeld | undefined {
    const c = this.#perCluster.get(w.cluster) ?? 0;
    if (c >= this.perCluster) return { limit: "cluster", name: w.cluster, running: c };
    if (w.storage === undefined) return undefined;
    const s = this.#perStorage.get(w.storage) ?? 0;
    return s >= this.perStorage ? { limit: "storage", name: w.storage, running: s } : undefined;
  }

  /** Counts, for metrics. */
  stats(): { running: number; waiting: number } {
    return { running: this.#running.size, waiting: this.#queue.length };
  }

  #dispatch(): void {
    for (let i = 0; i < this.#queue.length && this.#running.size < this.global;) {
      const w = this.#queue[i]!;
      if (this.#held(w)) {
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
      const place = { cluster: w.cluster, storage: w.storage };
      this.#running.set(w.id, { ...place, since: this.#clock.now() });
      count(this.#perCluster, w.cluster, 1);
      if (w.storage !== undefined) count(this.#perStorage, w.storage, 1);
      w.grant(this.#lease(w.id, place));
    }
  }

  #lease(id: string, place: JobPlace): Lease {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#running.delete(id);
      count(this.#perCluster, place.cluster, -1);
      if (place.storage !== undefined) count(this.#perStorage, place.storage, -1);
      this.#dispatch();
    };
    return { release, [Symbol.dispose]: release };
  }
}

/** Adds `delta` to the count of `key`, dropping counts that reach 0. */
function count(m: Map<string, number>, key: string, delta: number): void {
  const n = (m.get(key) ?? 0) + delta;
  if (n <= 0) m.delete(key);
  else m.set(key, n);
}

function positive(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Invalid ${name} concurrency limit ${n}: must be a positive integer`);
  }
  return n;
}
