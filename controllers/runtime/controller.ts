/**
 * A controller: a keyed work queue, N workers, and the reconcile contract.
 * - A reconcile returns `done` or `requeueAfter(ms)`.
 * - A thrown error retries the key with capped exponential backoff.
 * - A TerminalError (bad spec) is not retried; the next change of the object re-queues it.
 * Informer events are mapped to keys; events never carry meaning beyond "look again".
 */
import type { KubeObject } from "./types.ts";
import type { Clock } from "../../lib/clock.ts";
import { errorMessage, RetryableError, TerminalError } from "../../lib/errors.ts";
import { type InformerHandler, objectKey } from "./informer.ts";
import type { Logger } from "../../lib/log.ts";
import type { Metrics } from "./metrics.ts";
import { WorkQueue } from "./queue.ts";

export type Result = { kind: "done" } | { kind: "requeue"; afterMs: number };
export const done: Result = { kind: "done" };
export function requeueAfter(ms: number): Result {
  return { kind: "requeue", afterMs: Math.max(0, Math.round(ms)) };
}

export interface ReconcileContext {
  /** Aborts when shutdown's grace period for in-flight work has run out. */
  signal: AbortSignal;
  logger: Logger;
  /** How many times in a row this key failed before this attempt. */
  failures: number;
}

export type Reconcile = (key: string, ctx: ReconcileContext) => Promise<Result>;

export interface ControllerOptions {
  name: string;
  reconcile: Reconcile;
  clock: Clock;
  logger: Logger;
  metrics?: Metrics;
  workers?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * How often every object of a `resync` source is looked at again without any event, to
   * catch drift made outside Kubernetes (a role dropped by hand). 0 or absent: never.
   */
  resyncPeriodMs?: number;
}

/** Where in a resync period `key` is re-queued: fixed per key, spread evenly over keys. */
export function resyncOffset(key: string, periodMs: number): number {
  // FNV-1a: cheap, stable across restarts and replicas.
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return Math.floor((h / 2 ** 32) * periodMs);
}

/**
 * Whether an update matters to the owning controller: not a status-only write, and not a
 * finalizer being added (a reconcile's own `addFinalizer` would otherwise bring the object back
 * for a second, no-op pass; an added finalizer never changes what a reconcile does). A finalizer
 * removed does count.
 */
export function specOrMetaChanged(
  obj: KubeObject<unknown, unknown>,
  old: KubeObject<unknown, unknown> | undefined,
): boolean {
  if (!old) return true;
  const a = obj.metadata, b = old.metadata;
  if (a.generation !== b.generation) return true;
  if (a.deletionTimestamp !== b.deletionTimestamp) return true;
  if (JSON.stringify(a.annotations ?? {}) !== JSON.stringify(b.annotations ?? {})) return true;
  if (JSON.stringify(a.labels ?? {}) !== JSON.stringify(b.labels ?? {})) return true;
  const kept = new Set(a.finalizers ?? []);
  if ((b.finalizers ?? []).some((f) => !kept.has(f))) return true;
  // Objects without generation (Secrets) change through their data.
  return a.generation === undefined && a.resourceVersion !== b.resourceVersion;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  readonly #o: ControllerOptions;
  readonly #resync: { list(): KubeObject<unknown, unknown>[] }[] = [];
  #inFlight = 0;

  constructor(opts: ControllerOptions) {
    this.#o = opts;
    this.name = opts.name;
    this.queue = new WorkQueue({
      clock: opts.clock,
      ...(opts.baseBackoffMs !== undefined ? { baseDelayMs: opts.baseBackoffMs } : {}),
      ...(opts.maxBackoffMs !== undefined ? { maxDelayMs: opts.maxBackoffMs } : {}),
      onDepth: (n) => opts.metrics?.queueDepth.set({ controller: opts.name }, n),
    });
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Queues `key` after `ms` (at once when 0); an earlier pending time for it wins. */
  enqueueAfter(key: string, ms: number): void {
    this.queue.addAfter(key, ms);
  }

  /**
   * Feeds the queue from an informer. Without `map`, the object's own key is queued when its
   * spec or metadata changed (status-only updates, such as our own, are ignored).
   */
  watch<T extends KubeObject<unknown, unknown>>(
    informer: { addHandler(h: InformerHandler<T>): void },
    map?: (obj: T, old: T | undefined, deleted: boolean) => string[],
  ): void {
    informer.addHandler((obj, old, deleted) => {
      if (map) {
        for (const k of map(obj, old, deleted)) this.queue.add(k);
      } else if (deleted || specOrMetaChanged(obj, old)) {
        this.queue.add(objectKey(obj));
      }
    });
  }

  /**
   * Re-queues every object of `source` (an informer cache: no apiserver request) once per
   * `resyncPeriodMs`, each key at its own fixed offset in the period so the reconciles and
   * their catalog reads are spread out instead of arriving together. A key that is failing keeps
   * its backoff; a key already due sooner keeps its earlier time.
   */
  resync<T extends KubeObject<unknown, unknown>>(source: { list(): T[] }): void {
    this.#resync.push(source as unknown as { list(): KubeObject<unknown, unknown>[] });
  }

  #startResync(): () => void {
    const { clock, metrics, name } = this.#o;
    const period = this.#o.resyncPeriodMs ?? 0;
    if (!(period > 0) || !this.#resync.length) return () => {};
    let cancel = () => {};
    const tick = () => {
      let n = 0;
      for (const source of this.#resync) {
        for (const obj of source.list()) {
          const key = objectKey(obj);
          if (this.queue.failures(key) > 0) continue;
          this.queue.addAfter(key, resyncOffset(key, period));
          n++;
        }
      }
      metrics?.resyncQueued.inc({ controller: name }, n);
      cancel = clock.setTimer(period, tick);
    };
    cancel = clock.setTimer(period, tick);
    return () => cancel();
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Runs workers until `signal` aborts, then stops taking keys and waits up to `graceMs`
   * for in-flight reconciles before aborting their context signal. `halt` aborts that signal at
   * once (the leader lease was lost: no grace).
   */
  async run(
    signal: AbortSignal,
    opts: { graceMs?: number; halt?: AbortSignal } = {},
  ): Promise<void> {
    const hard = new AbortController();
    let hardCancel: (() => void) | undefined;
    const onAbort = () => {
      this.queue.shutDown();
      hardCancel ??= this.#o.clock.setTimer(
        opts.graceMs ?? 30_000,
        () => hard.abort(new Error("Shutdown grace period ended")),
      );
    };
    const onHalt = () => {
      this.queue.shutDown();
      hard.abort(opts.halt?.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    if (opts.halt?.aborted) onHalt();
    else opts.halt?.addEventListener("abort", onHalt, { once: true });
    const stopResync = this.#startResync();
    const workers = Array.from({ length: this.#o.workers ?? 2 }, () => this.#worker(hard.signal));
    await Promise.all(workers);
    stopResync();
    hardCancel?.();
    signal.removeEventListener("abort", onAbort);
    opts.halt?.removeEventListener("abort", onHalt);
  }

  async #worker(hard: AbortSignal): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.#inFlight++;
      try {
        await this.#process(key, hard);
      } finally {
        this.#inFlight--;
        this.queue.done(key);
      }
    }
  }

  async #process(key: string, signal: AbortSignal): Promise<void> {
    const { name, metrics, logger, clock } = this.#o;
    const log = logger.with({ controller: name, key });
    const start = clock.now();
    const failures = this.queue.failures(key);
    try {
      const result = await this.#o.reconcile(key, { signal, logger: log, failures });
      this.queue.forget(key);
      if (result.kind === "requeue") {
        this.queue.addAfter(key, result.afterMs);
        metrics?.reconcileTotal.inc({ controller: name, result: "requeue" });
      } else {
        metrics?.reconcileTotal.inc({ controller: name, result: "success" });
      }
    } catch (e) {
      if (e instanceof TerminalError) {
        this.queue.forget(key);
        metrics?.reconcileTotal.inc({ controller: name, result: "terminal" });
        metrics?.reconcileErrors.inc({ controller: name, reason: e.reason });
        log.warn("Reconcile failed permanently; waiting for a spec change", {
          reason: e.reason,
          error: e.message,
        });
      } else {
        const delay = this.queue.addRateLimited(key);
        const reason = e instanceof RetryableError ? e.reason : "Error";
        metrics?.reconcileTotal.inc({ controller: name, result: "error" });
        metrics?.reconcileErrors.inc({ controller: name, reason });
        log.warn("Reconcile failed, will retry", {
          reason,
          error: errorMessage(e),
          retryInMs: delay,
        });
      }
    } finally {
      metrics?.reconcileDuration.observe({ controller: name }, (clock.now() - start) / 1000);
    }
  }
}
