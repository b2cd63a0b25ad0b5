/**
 * What S3, GCS and Azure do alike, once: {@link CloudStore} checks keys, runs each call under
 * its signal, maps failures (storage/errors.ts), hides the put token, sorts listings, and puts
 * without overwriting (no_overwrite.ts). A backend supplies only its SDK's requests, which
 * throw the SDK's own errors.
 */
import type { Logger } from "../lib/log.ts";
import { guarded, type Subject } from "./errors.ts";
import {
  newPutToken,
  PUT_TOKEN_KEY,
  settlePut,
  withoutPutToken,
  withPutToken,
} from "./no_overwrite.ts";
import {
  abortable,
  byKey,
  type CallOptions,
  type ObjectHead,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type StaticCredentials,
  StorageError,
  throwIfAborted,
  type TrackedSource,
  trackSource,
  validateKey,
} from "./store.ts";

/** What every cloud backend takes besides its bucket and its upload tuning. */
export interface CloudStoreOptions {
  /** A compatible server's, an emulator's or a private endpoint's URL. */
  endpoint?: string | undefined;
  /** Static credentials; absent means the cloud's workload identity (each backend says how). */
  credentials?: StaticCredentials | undefined;
  /**
   * The workload-identity variables the backend names, passed explicitly instead of read from
   * the process environment.
   */
  env?: Record<string, string | undefined> | undefined;
  logger?: Logger | undefined;
}

/** What a backend's `stat` returns: `head`'s answer with the put token, and the version. */
export interface StoredObject extends ObjectHead {
  /** What names this version of the object for a conditional delete: ETag, generation. */
  version: string;
}

/** The base of the cloud backends. */
export abstract class CloudStore implements ObjectStore {
  abstract readonly provider: "s3" | "gcs" | "azure";

  async put(
    key: string,
    body: ReadableStream<Uint8Array>,
    opts: PutOptions = {},
  ): Promise<{ size: number }> {
    validateKey(key);
    const signal = opts.signal;
    const source = trackSource(body, signal);
    const token = newPutToken();
    let failure: { error: unknown } | undefined;
    try {
      throwIfAborted(signal);
      await this.upload(key, source, { ...opts, metadata: withPutToken(opts.metadata, token) });
    } catch (e) {
      failure = { error: e };
      await source.cancel(e);
    }
    await settlePut({
      token,
      failure,
      source,
      signal,
      inspect: async () => {
        const found = await this.#run(() => this.stat(key), { what: "object", missing: true });
        return found && { token: found.metadata[PUT_TOKEN_KEY], version: found.version };
      },
      remove: (version) => this.remove(key, version),
      map: (e) => this.mapError(e, "bucket"),
    });
    return { size: source.bytes };
  }

  async get(key: string, opts: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    validateKey(key);
    const { signal } = opts;
    const stream = await this.#run(() => this.download(key, signal), { signal, what: "object" });
    return abortable(stream, signal);
  }

  async head(key: string, opts: CallOptions = {}): Promise<ObjectHead | undefined> {
    validateKey(key);
    const { signal } = opts;
    const found = await this.#run(() => this.stat(key, signal), {
      signal,
      what: "object",
      missing: true,
    });
    if (!found) return undefined;
    const { version: _version, ...head } = found;
    return { ...head, metadata: withoutPutToken(found.metadata) };
  }

  async list(prefix: string, opts: CallOptions = {}): Promise<ObjectInfo[]> {
    validateKey(prefix, "prefix");
    const { signal } = opts;
    const all = await this.#run(() => this.listAll(prefix, signal), { signal });
    return all.filter((o) => o.key.startsWith(prefix)).sort(byKey);
  }

  async delete(key: string, opts: CallOptions = {}): Promise<void> {
    validateKey(key);
    const { signal } = opts;
    await this.#run(() => this.deleteObject(key, signal), {
      signal,
      what: "object",
      missing: true,
    });
  }

  async probe(opts: CallOptions = {}): Promise<void> {
    await this.#run(() => this.probeBucket(opts.signal), { signal: opts.signal });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Uploads `source` as a new object at `key`, conditional on the key being free, with
   * `opts.metadata` (which holds the put token); cleans up its own upload state when it fails.
   */
  protected abstract upload(
    key: string,
    source: TrackedSource,
    opts: PutOptions & { metadata: Record<string, string> },
  ): Promise<void>;
  /**
   * Deletes `version` of the object at `key`, and nothing newer. Its failure is ignored: the
   * put reports its own.
   */
  protected abstract remove(key: string, version: string): Promise<void>;
  /** The object at `key`, with the metadata as stored (put token included). */
  protected abstract stat(key: string, signal?: AbortSignal): Promise<StoredObject>;
  protected abstract download(
    key: string,
    signal?: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>>;
  /** The objects under `prefix` (a backend may return more; the base filters and sorts). */
  protected abstract listAll(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]>;
  /** Deletes the object at `key`; a missing one may fail NotFound or succeed. */
  protected abstract deleteObject(key: string, signal?: AbortSignal): Promise<void>;
  /** Checks that the bucket exists and is writable, leaving nothing behind. */
  protected abstract probeBucket(signal?: AbortSignal): Promise<void>;
  /** Maps an SDK error; `what` says whether a 404 means the object or the bucket. */
  protected abstract mapError(e: unknown, what: Subject): StorageError;

  /** Runs one request under {@link guarded}; with `missing`, NotFound means undefined. */
  #run<T>(
    run: () => Promise<T>,
    o: CallOptions & { what?: Subject; missing: true },
  ): Promise<T | undefined>;
  #run<T>(run: () => Promise<T>, o: CallOptions & { what?: Subject; missing?: false }): Promise<T>;
  #run<T>(
    run: () => Promise<T>,
    o: CallOptions & { what?: Subject; missing?: boolean },
  ): Promise<T | undefined> {
    return guarded<T | undefined>(run, (e, what) => this.mapError(e, what), {
      signal: o.signal,
      what: o.what ?? "bucket",
      ...(o.missing ? { ifNotFound: () => undefined } : {}),
    });
  }
}
