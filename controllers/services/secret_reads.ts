/**
 * Secrets read through the API once per resourceVersion. The operator watches the metadata of
 * every Secret (a metadata-only informer: names, labels, owners, resourceVersions, never data);
 * a Secret whose data a controller needs is read with a GET and kept, and the next read is
 * served from memory for as long as the informer shows the same resourceVersion. The
 * operator's own writes are remembered with the resourceVersion the apiserver returned, so a
 * Secret it just wrote is not read back once the informer catches up.
 *
 * A Secret the informer does not show (not there yet, or the informer lags behind a create) is
 * always read, so a missing entry never hides a Secret that exists. The informer must be the one
 * whose events bring the reconcile back: when a Secret is deleted, its store drops it before the
 * handlers run, so the pass that event starts reads it again. Another informer may lag and
 * still show it (found by database_user_test: a deleted Secret was not recreated). When the informer shows an
 * older version than the last read, it is read again: a cached Secret is never newer-looking
 * than what was read.
 *
 * It also says whether an informer event is only the echo of the operator's own write
 * ({@link ownWrite}): the version the apiserver returned to that write, so a watch can skip the
 * pass the echo would start (that pass would find what the write left; issue 12). The watch
 * event often arrives before the write's response: {@link echo} then holds the event until the
 * writes in flight when it came have returned, and decides then.
 */
import type { KubeObject } from "../../crds/kind.ts";
import { NotFoundError } from "../../lib/errors.ts";
import { type KubeClient, SecretResource } from "../runtime/kube.ts";
import type { InformerSet } from "../runtime/shared.ts";

type Secret = KubeObject<unknown, unknown>;

/** What {@link SecretReads} counts (tests and the bench read them). */
export interface SecretReadStats {
  /** Reads answered from memory. */
  hits: number;
  /** Reads sent to the apiserver. */
  gets: number;
}

export class SecretReads {
  readonly #kept = new Map<string, Secret>();
  /** The resourceVersion of this process's last write of each Secret. */
  readonly #written = new Map<string, string>();
  /** Writes sent through {@link write} that have not returned. */
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly stats: SecretReadStats = { hits: 0, gets: 0 };
  #sinceSweep = 0;

  constructor(
    private readonly o: {
      client: KubeClient;
      /** The metadata of the Secrets; without it every read is a GET. */
      informer?: Pick<InformerSet<KubeObject<unknown, unknown>>, "get"> | undefined;
    },
  ) {}

  /** The Secret, or undefined when it does not exist. The caller may change the copy. */
  async find<T extends Secret>(
    o: { namespace: string; name: string; signal?: AbortSignal },
  ): Promise<T | undefined> {
    const key = `${o.namespace}/${o.name}`;
    const shown = this.o.informer?.get(key)?.metadata.resourceVersion;
    const kept = this.#kept.get(key);
    if (shown !== undefined && kept?.metadata.resourceVersion === shown) {
      this.stats.hits++;
      return structuredClone(kept) as T;
    }
    this.stats.gets++;
    this.#sweep();
    try {
      const secret = await this.o.client.get<T>(SecretResource, o);
      this.#keep(secret);
      return secret;
    } catch (e) {
      if (e instanceof NotFoundError) {
        this.#kept.delete(key);
        this.#written.delete(key);
        return undefined;
      }
      throw e;
    }
  }

  /** A Secret as the apiserver returned it from a create, replace or patch. */
  remember(secret: Secret): void {
    if (this.#keep(secret)) {
      this.#written.set(
        `${secret.metadata.namespace}/${secret.metadata.name}`,
        secret.metadata.resourceVersion!,
      );
    }
  }

  /**
   * Whether `shown` (an informer's copy) is the version this process's last write of it left:
   * nobody changed it since. A deleted Secret is never that (the caller checks deletion).
   */
  ownWrite(shown: { metadata: { namespace?: string; name?: string; resourceVersion?: string } }) {
    const rv = shown.metadata.resourceVersion;
    return rv !== undefined &&
      this.#written.get(`${shown.metadata.namespace}/${shown.metadata.name}`) === rv;
  }

  /** Sends a create, replace or patch of a Secret and remembers what it returned. */
  async write<T extends Secret>(send: () => Promise<T>): Promise<T> {
    const sent = send().then((s) => {
      this.remember(s);
      return s;
    });
    this.#inFlight.add(sent);
    try {
      return await sent;
    } finally {
      this.#inFlight.delete(sent);
    }
  }

  /**
   * Whether a watch may skip the event that shows `shown` (not a deletion): true when it is the
   * echo of our own write, and also when a write is in flight, in which case `wake` runs once
   * those writes have returned (or failed) unless the event turned out to be their echo.
   */
  echo(shown: Secret, wake: () => void): boolean {
    if (this.ownWrite(shown)) return true;
    if (!this.#inFlight.size) return false;
    Promise.allSettled([...this.#inFlight]).then(() => {
      if (!this.ownWrite(shown)) wake();
    });
    return true;
  }

  /** A Secret deleted by the operator. */
  forget(ref: { namespace: string; name: string }): void {
    this.#kept.delete(`${ref.namespace}/${ref.name}`);
    this.#written.delete(`${ref.namespace}/${ref.name}`);
  }

  #keep(secret: Secret): boolean {
    if (!this.o.informer || !secret.metadata.resourceVersion) return false;
    this.#kept.set(`${secret.metadata.namespace}/${secret.metadata.name}`, structuredClone(secret));
    return true;
  }

  /** How many Secrets are kept (memory is bounded by the Secrets that still exist). */
  get size(): number {
    return this.#kept.size;
  }

  /** Every 256 GETs, drops the Secrets the informer no longer shows (deleted by anyone). */
  #sweep(): void {
    if (!this.o.informer || ++this.#sinceSweep < 256) return;
    this.#sinceSweep = 0;
    for (const key of this.#kept.keys()) {
      if (this.o.informer.get(key) === undefined) {
        this.#kept.delete(key);
        this.#written.delete(key);
      }
    }
  }
}
