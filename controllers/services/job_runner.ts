/**
 * Long-running jobs (backups, restores) started by reconciles but not run inside them: a
 * reconcile must return quickly so the queue keeps serving other objects, while a dump may
 * run for hours. Every job belongs to this runner's supervisor, which the manager awaits at
 * shutdown (a leader-only runnable), so none floats.
 */
import { type Clock, systemClock } from "../../lib/clock.ts";
import type { Logger } from "../../lib/log.ts";
import { Supervisor } from "../runtime/supervisor.ts";

/** Why a job was stopped from outside: the process shuts down, or its object went away. */
export class JobStopped extends Error {
  override name = "JobStopped";
  constructor(readonly why: "shutdown" | "deleted", message: string) {
    super(message);
  }
}

interface Job {
  ctl: AbortController;
}

export class JobRunner {
  readonly #sup: Supervisor;
  readonly #jobs = new Map<string, Job>();
  #stopped: JobStopped | undefined;
  readonly #graceMs: number;
  readonly #clock: Clock;
  readonly #logger: Logger;

  /**
   * `shutdownGraceMs`: how long running jobs may go on after `stop` before they are aborted
   * (`--backup-shutdown-grace`; 0 aborts at once). No new job starts meanwhile.
   */
  constructor(logger: Logger, opts: { shutdownGraceMs?: number; clock?: Clock } = {}) {
    this.#sup = new Supervisor(logger);
    this.#logger = logger;
    this.#graceMs = opts.shutdownGraceMs ?? 0;
    this.#clock = opts.clock ?? systemClock;
  }

  /** Whether a job runs for `key` in this process. */
  has(key: string): boolean {
    return this.#jobs.has(key);
  }

  get size(): number {
    return this.#jobs.size;
  }

  /** Whether the runner is stopping (no new jobs start). */
  get stopping(): boolean {
    return this.#stopped !== undefined;
  }

  /**
   * Starts `fn` for `key` unless one runs already; returns whether it started. `onEnd` runs
   * after the job finished (to re-queue the key).
   */
  start(key: string, fn: (signal: AbortSignal) => Promise<void>, onEnd?: () => void): boolean {
    if (this.#jobs.has(key) || this.#stopped) return false;
    const job: Job = { ctl: new AbortController() };
    this.#jobs.set(key, job);
    this.#sup.spawn(`job ${key}`, async () => {
      try {
        await fn(job.ctl.signal);
      } finally {
        this.#jobs.delete(key);
        onEnd?.();
      }
    });
    return true;
  }

  /** Aborts the job of `key` (its object was deleted). */
  abort(key: string, reason: JobStopped): void {
    this.#jobs.get(key)?.ctl.abort(reason);
  }

  /**
   * Stops starting jobs, lets running ones go on for the shutdown grace, then aborts the rest
   * with a shutdown reason and waits for all of them to finish. `halt` cuts the grace short.
   */
  async stop(
    message = "the operator is shutting down",
    opts: { halt?: AbortSignal } = {},
  ): Promise<void> {
    this.#stopped ??= new JobStopped("shutdown", message);
    if (this.#graceMs > 0 && this.#jobs.size > 0 && !opts.halt?.aborted) {
      this.#logger.info("Letting running backups and restores finish before shutdown", {
        jobs: this.#jobs.size,
        graceMs: this.#graceMs,
      });
      const timer = new AbortController();
      const wake = opts.halt ? AbortSignal.any([timer.signal, opts.halt]) : timer.signal;
      const grace = this.#clock.sleep(this.#graceMs, wake).catch(() => {});
      await Promise.race([this.#sup.wait(), grace]);
      timer.abort();
    }
    for (const j of this.#jobs.values()) j.ctl.abort(this.#stopped);
    await this.#sup.wait();
  }

  /**
   * A leader-only runnable: holds until `signal` aborts, then stops every job. When the lease
   * was lost (`halt`), jobs are aborted at once: their child processes (pg_restore, psql,
   * pg_dump) are killed before another replica can take over.
   */
  runnable(): (signal: AbortSignal, ctx?: { halt: AbortSignal }) => Promise<void> {
    return async (signal, ctx) => {
      if (!signal.aborted) {
        await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
      }
      const halt = ctx?.halt;
      if (halt?.aborted) await this.stop("the leader lease was lost", { halt });
      else await this.stop(undefined, halt ? { halt } : {});
    };
  }
}
