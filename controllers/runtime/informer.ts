/**
 * An informer: list, then watch from the list's resourceVersion, keeping a local cache.
 * On 410 Gone (on connect or in the stream) it lists again; on any other failure it
 * re-watches after a jittered, capped backoff, so an unreachable apiserver never causes a
 * hot loop; the backoff ends early (once per run of failures) when the client sees the apiserver
 * answer again. Handlers receive the object; they enqueue keys, they never act on events.
 */
import type { KubeObject } from "./types.ts";
import type { Clock } from "../../lib/clock.ts";
import { GoneError } from "../../lib/errors.ts";
import type { KubeClient, Resource } from "./kube.ts";
import type { Logger } from "../../lib/log.ts";
import { IndexedCache, type IndexFn } from "./indexed_cache.ts";

export type InformerHandler<T> = (obj: T, old: T | undefined, deleted: boolean) => void;

export interface InformerOptions<T> {
  client: KubeClient;
  resource: Resource;
  clock: Clock;
  logger: Logger;
  /** Watch one namespace; all namespaces when absent. */
  namespace?: string;
  labelSelector?: string;
  /** Cache only metadata (PartialObjectMetadata): for Secrets, whose data we read on demand. */
  metadataOnly?: boolean;
  /** Server-side watch timeout; the informer re-watches when it elapses. */
  watchTimeoutSeconds?: number;
  /** Backoff bounds after a failed list or watch. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Page size of the initial list. */
  pageSize?: number;
  onChange?: InformerHandler<T>;
  /** Called with every outcome, for metrics and tests. */
  onStat?: (event: "list" | "watch" | "relist410" | "error") => void;
}

/** The cache key of an object: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(o: { metadata: { namespace?: string; name: string } }): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

export class Informer<T extends KubeObject<unknown, unknown>> {
  readonly #o: InformerOptions<T>;
  readonly #cache = new IndexedCache<T>();
  readonly #handlers: InformerHandler<T>[] = [];
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #resourceVersion: string | undefined;

  constructor(opts: InformerOptions<T>) {
    this.#o = opts;
    if (opts.onChange) this.#handlers.push(opts.onChange);
  }

  get resource(): Resource {
    return this.#o.resource;
  }

  addHandler(h: InformerHandler<T>): void {
    this.#handlers.push(h);
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** Resolves once the first list has filled the cache. */
  waitForSync(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((r) => this.#syncWaiters.push(r));
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  /**
   * Adds a secondary index, kept up to date on every event and relist (idempotent for the same
   * name and function: see {@link IndexedCache.addIndex}). Add it before reading through it.
   */
  addIndex(name: string, fn: IndexFn<T>): void {
    this.#cache.addIndex(name, fn);
  }

  /** The cached objects whose index `name` holds `value`. */
  byIndex(name: string, value: string): T[] {
    return this.#cache.byIndex(name, value);
  }

  /** Runs until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { clock, logger } = this.#o;
    const minB = this.#o.minBackoffMs ?? 800;
    const maxB = this.#o.maxBackoffMs ?? 30_000;
    let failures = 0;
    // Whether this run of failures was already cut short once by the apiserver answering again.
    let woken = false;
    while (!signal.aborted) {
      // Read before the attempt: if it fails and the apiserver answers anyone after that, or
      // already has, the backoff below ends at once.
      const back = this.#o.client.reconnected as AbortSignal | undefined;
      try {
        if (this.#resourceVersion === undefined) await this.#list(signal);
        const progressed = await this.#watch(signal);
        // A watch that ends normally is re-opened at once, unless it ended without any event
        // very quickly, which would otherwise turn into a tight loop. One the client ended
        // because the apiserver answers again after an outage is re-opened at once too.
        if (progressed) {
          failures = 0;
          woken = false;
        } else if (!back?.aborted) await clock.sleep(jitter(minB), signal);
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof GoneError) {
          this.#o.onStat?.("relist410");
          logger.info("Watch expired, listing again", { resource: this.#o.resource.plural });
          this.#resourceVersion = undefined;
          // A short pause only: a 410 is an answer, not a failure to back off from.
          await clock.sleep(jitter(Math.min(minB / 4, 200)), signal).catch(() => {});
          continue;
        }
        this.#o.onStat?.("error");
        const delay = Math.min(maxB, minB * 2 ** Math.min(failures++, 10));
        logger.warn("List or watch failed, retrying", {
          resource: this.#o.resource.plural,
          error: e,
          retryInMs: delay,
        });
        // The backoff ends early once per run of failures, when another request reaches the
        // apiserver again: after an outage every informer re-lists within moments of the first
        // answer instead of at its own capped backoff (up to 30 s). Once only, so a flapping
        // apiserver still gets the capped backoff.
        const wake = woken || !back ? signal : AbortSignal.any([signal, back]);
        await clock.sleep(jitter(delay), wake).catch(() => {});
        if (wake !== signal && wake.aborted && !signal.aborted) woken = true;
      }
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const { client, resource } = this.#o;
    const seen = new Map<string, T>();
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await client.list<T>(resource, {
        ...(this.#o.namespace ? { namespace: this.#o.namespace } : {}),
        ...(this.#o.labelSelector ? { labelSelector: this.#o.labelSelector } : {}),
        limit: this.#o.pageSize ?? 500,
        ...(this.#o.metadataOnly ? { metadataOnly: true } : {}),
        ...(cont ? { continue: cont } : {}),
      });
      if (signal.aborted) return;
      for (const item of page.items ?? []) {
        // Lists omit apiVersion/kind on items; restore them for handlers and writes.
        item.apiVersion ??= resource.group
          ? `${resource.group}/${resource.version}`
          : resource.version;
        item.kind ??= resource.kind;
        seen.set(objectKey(item), item);
      }
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    this.#o.onStat?.("list");
    for (const [key, old] of this.#cache.entries()) {
      if (!seen.has(key)) {
        this.#cache.delete(key);
        this.#emit(old, old, true);
      }
    }
    for (const [key, obj] of seen) {
      const old = this.#cache.get(key);
      this.#cache.set(key, obj);
      if (!old || old.metadata.resourceVersion !== obj.metadata.resourceVersion) {
        this.#emit(obj, old, false);
      }
    }
    this.#resourceVersion = rv;
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters) w();
      this.#syncWaiters = [];
    }
  }

  /** Returns whether any event arrived. */
  async #watch(signal: AbortSignal): Promise<boolean> {
    const { client, resource } = this.#o;
    let progressed = false;
    this.#o.onStat?.("watch");
    const events = client.watch<T>(resource, {
      ...(this.#o.namespace ? { namespace: this.#o.namespace } : {}),
      ...(this.#o.labelSelector ? { labelSelector: this.#o.labelSelector } : {}),
      ...(this.#resourceVersion ? { resourceVersion: this.#resourceVersion } : {}),
      ...(this.#o.metadataOnly ? { metadataOnly: true } : {}),
      timeoutSeconds: this.#o.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 60),
      signal,
    });
    for await (const ev of events) {
      progressed = true;
      const obj = ev.object;
      this.#resourceVersion = obj.metadata.resourceVersion ?? this.#resourceVersion;
      if (ev.type === "BOOKMARK") continue;
      obj.apiVersion ??= resource.group
        ? `${resource.group}/${resource.version}`
        : resource.version;
      obj.kind ??= resource.kind;
      const key = objectKey(obj);
      const old = this.#cache.get(key);
      if (ev.type === "DELETED") {
        this.#cache.delete(key);
        this.#emit(obj, old, true);
      } else {
        this.#cache.set(key, obj);
        this.#emit(obj, old, false);
      }
    }
    return progressed;
  }

  #emit(obj: T, old: T | undefined, deleted: boolean): void {
    for (const h of this.#handlers) {
      try {
        h(obj, old, deleted);
      } catch (e) {
        this.#o.logger.error("Informer handler failed", { error: e });
      }
    }
  }
}

function jitter(ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}
