/**
 * Runs informers, controllers and leader-only tasks together. Informers start at once (a
 * standby keeps warm caches); controllers and leader-only tasks run only while leading. On
 * shutdown, controllers stop taking work and drain first, then the lease is released, so two
 * instances never reconcile at the same time. When the lease is lost, nothing drains: the
 * leader's fence is closed, and every controller and task is halted at once.
 */
import type { KubeObject } from "./types.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Controller } from "./controller.ts";
import type { Informer } from "./informer.ts";
import type { LeaderElector } from "./leader.ts";
import type { Logger } from "../../lib/log.ts";
import type { Metrics } from "./metrics.ts";
import { Supervisor } from "./supervisor.ts";

export interface ManagerOptions {
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  leader?: LeaderElector;
  /** How long in-flight reconciles may run after shutdown starts. */
  graceMs?: number;
  /** Runs after a graceful drain, while the lease is still held (flushes pending Events). */
  beforeRelease?: () => Promise<void>;
}

/** What a leader-only task gets besides its stop signal. */
export interface RunnableContext {
  /** Aborts when the lease is lost: stop every side effect now, no grace period. */
  halt: AbortSignal;
}

/**
 * A leader-only task: `signal` aborts when it should wind down (shutdown, lease lost),
 * `ctx.halt` when it must stop at once.
 */
export type Runnable = (signal: AbortSignal, ctx: RunnableContext) => Promise<void>;

const NEVER = new AbortController().signal;

export class Manager {
  readonly #o: ManagerOptions;
  readonly #informers: Informer<KubeObject<unknown, unknown>>[] = [];
  readonly #controllers: Controller[] = [];
  readonly #runnables: { name: string; fn: Runnable }[] = [];
  #state: "starting" | "standby" | "leading" | "stopping" = "starting";

  constructor(opts: ManagerOptions) {
    this.#o = opts;
  }

  addInformer<T extends KubeObject<unknown, unknown>>(i: Informer<T>): Informer<T> {
    this.#informers.push(i as unknown as Informer<KubeObject<unknown, unknown>>);
    return i;
  }

  addController(c: Controller): Controller {
    this.#controllers.push(c);
    return c;
  }

  /** A task that runs only while leading (schedulers, periodic sweeps). */
  addLeaderRunnable(name: string, fn: Runnable): void {
    this.#runnables.push({ name, fn });
  }

  /** Readiness: caches synced and either leading or standing by with a healthy lease loop. */
  ready(): { ok: boolean; detail: string } {
    const unsynced = this.#informers.filter((i) => !i.synced).map((i) => i.resource.plural);
    if (unsynced.length) return { ok: false, detail: `caches not synced: ${unsynced.join(", ")}` };
    if (this.#state === "stopping") return { ok: false, detail: "shutting down" };
    if (this.#state === "starting") return { ok: false, detail: "starting" };
    return { ok: true, detail: this.#state };
  }

  get state(): string {
    return this.#state;
  }

  /** Runs until `signal` aborts ("stopped") or the leader lease is lost ("lost"). */
  async run(signal: AbortSignal): Promise<"stopped" | "lost"> {
    const { logger, metrics, leader } = this.#o;
    const sup = new Supervisor(logger);
    const informerStop = new AbortController();
    for (const inf of this.#informers) {
      sup.spawn(`informer ${inf.resource.plural}`, () => inf.run(informerStop.signal));
    }
    try {
      await Promise.race([
        Promise.all(this.#informers.map((i) => i.waitForSync())),
        new Promise((r) => signal.addEventListener("abort", r, { once: true })),
      ]);
      if (signal.aborted) return "stopped";
      logger.info("Caches synced", { informers: this.#informers.length });
      this.#state = "standby";
      if (leader && !(await leader.acquire(signal))) return "stopped";
      this.#state = "leading";
      metrics.leader.set(1);
      const halt = leader?.fence.signal ?? NEVER;

      const work = new AbortController();
      const onStop = () => work.abort(signal.reason);
      const onHalt = () => work.abort(halt.reason);
      signal.addEventListener("abort", onStop, { once: true });
      halt.addEventListener("abort", onHalt, { once: true });
      const workers = new Supervisor(logger);
      for (const c of this.#controllers) {
        workers.spawn(
          `controller ${c.name}`,
          () => c.run(work.signal, { graceMs: this.#o.graceMs ?? 30_000, halt }),
        );
      }
      for (const r of this.#runnables) workers.spawn(r.name, () => r.fn(work.signal, { halt }));

      let outcome: "stopped" | "lost" = "stopped";
      if (leader) {
        const holdStop = new AbortController();
        const held = leader.hold(holdStop.signal);
        await Promise.race([
          held,
          new Promise((r) => work.signal.addEventListener("abort", r, { once: true })),
        ]);
        this.#state = "stopping";
        await workers.wait();
        if (!halt.aborted) await this.#o.beforeRelease?.();
        holdStop.abort();
        if ((await held) === "lost") outcome = "lost";
      } else {
        await new Promise((r) => work.signal.addEventListener("abort", r, { once: true }));
        this.#state = "stopping";
        await workers.wait();
        await this.#o.beforeRelease?.();
      }
      metrics.leader.set(0);
      signal.removeEventListener("abort", onStop);
      halt.removeEventListener("abort", onHalt);
      return outcome;
    } finally {
      this.#state = "stopping";
      informerStop.abort();
      await sup.wait();
    }
  }
}
