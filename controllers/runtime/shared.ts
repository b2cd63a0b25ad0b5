/**
 * Shared informers and the dependencies every controller receives. One informer per resource
 * (one per watched namespace when --namespaces restricts them), shared by all controllers that
 * read that resource, so each object is listed and watched once.
 */
import type { KubeObject } from "./types.ts";
import type { Clock } from "../../lib/clock.ts";
import { Controller, type Reconcile } from "./controller.ts";
import type { EventRecorder } from "./events.ts";
import type { Fence } from "../../lib/fence.ts";
import { Informer, type InformerHandler } from "./informer.ts";
import type { IndexFn } from "./indexed_cache.ts";
import type { KubeClient, Resource } from "./kube.ts";
import type { Logger } from "../../lib/log.ts";
import type { Manager } from "./manager.ts";
import type { Metrics } from "./metrics.ts";

/** A read view over one or more informers of the same resource. */
export class InformerSet<T extends KubeObject<unknown, unknown>> {
  constructor(readonly resource: Resource, readonly parts: Informer<T>[]) {}

  get(key: string): T | undefined {
    for (const p of this.parts) {
      const v = p.get(key);
      if (v) return v;
    }
    return undefined;
  }

  list(): T[] {
    return this.parts.flatMap((p) => p.list());
  }

  addHandler(h: InformerHandler<T>): void {
    for (const p of this.parts) p.addHandler(h);
  }

  /** Adds index `name` to every part (idempotent for the same function); returns this set. */
  withIndex(name: string, fn: IndexFn<T>): this {
    for (const p of this.parts) p.addIndex(name, fn);
    return this;
  }

  /** The cached objects whose index `name` holds `value`, from every part. */
  byIndex(name: string, value: string): T[] {
    return this.parts.length === 1
      ? this.parts[0]!.byIndex(name, value)
      : this.parts.flatMap((p) => p.byIndex(name, value));
  }

  get synced(): boolean {
    return this.parts.every((p) => p.synced);
  }
}

export interface SharedInformersOptions {
  client: KubeClient;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  manager: Manager;
  /** Empty: all namespaces. */
  namespaces: readonly string[];
}

export class SharedInformers {
  readonly #sets = new Map<string, InformerSet<KubeObject<unknown, unknown>>>();
  constructor(private readonly o: SharedInformersOptions) {}

  /** The shared informer set of a resource, created and registered with the manager on first use. */
  for<T extends KubeObject<unknown, unknown>>(
    res: Resource,
    opts: { labelSelector?: string; metadataOnly?: boolean } = {},
  ): InformerSet<T> {
    const id = `${res.group}/${res.version}/${res.plural}?${opts.labelSelector ?? ""}&${
      opts.metadataOnly ?? false
    }`;
    const existing = this.#sets.get(id);
    if (existing) return existing as unknown as InformerSet<T>;
    const namespaces = res.namespaced && this.o.namespaces.length ? this.o.namespaces : [undefined];
    const parts = namespaces.map((ns) =>
      this.o.manager.addInformer(
        new Informer<T>({
          client: this.o.client,
          resource: res,
          clock: this.o.clock,
          logger: this.o.logger.with({ informer: res.plural, ...(ns ? { namespace: ns } : {}) }),
          ...(ns ? { namespace: ns } : {}),
          ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
          ...(opts.metadataOnly ? { metadataOnly: true } : {}),
          onStat: (event) => this.o.metrics.watchEvents.inc({ resource: res.plural, event }),
        }),
      )
    );
    const set = new InformerSet<T>(res, parts);
    this.#sets.set(id, set as unknown as InformerSet<KubeObject<unknown, unknown>>);
    return set;
  }
}

/** What main.ts hands every controller's setup function. */
export interface ControllerDeps {
  /** Its writes pass `fence`. */
  client: KubeClient;
  /** Open while this replica may act (leads); every side effect passes it. */
  fence: Fence;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  recorder: EventRecorder;
  informers: SharedInformers;
  manager: Manager;
  workers: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** --resync-period: how often controllers that opt in look at every object again (0: never). */
  resyncPeriodMs?: number;
}

/**
 * A controller with the process-wide worker count and backoff, registered with the manager.
 * `maxBackoffMs` lowers the cap for controllers that must look again sooner.
 */
export function addController(
  deps: ControllerDeps,
  name: string,
  reconcile: Reconcile,
  opts: { maxBackoffMs?: number } = {},
): Controller {
  return deps.manager.addController(
    new Controller({
      name,
      reconcile,
      clock: deps.clock,
      logger: deps.logger,
      metrics: deps.metrics,
      workers: deps.workers,
      baseBackoffMs: deps.backoffBaseMs,
      maxBackoffMs: Math.min(deps.backoffMaxMs, opts.maxBackoffMs ?? Infinity),
      ...(deps.resyncPeriodMs ? { resyncPeriodMs: deps.resyncPeriodMs } : {}),
    }),
  );
}
