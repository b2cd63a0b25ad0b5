/**
 * An in-memory object store for unit tests of other modules. It is the only fake storage
 * backend allowed, and it passes the same conformance suite as the real ones.
 */
import { alreadyExists, requestAborted } from "./errors.ts";
import {
  byKey,
  type CallOptions,
  type ObjectHead,
  type ObjectInfo,
  type ObjectStore,
  putFailure,
  type PutOptions,
  StorageError,
  throwIfAborted,
  trackSource,
  validateKey,
} from "./store.ts";

interface Entry {
  data: Uint8Array;
  lastModified: Date;
  metadata: Record<string, string>;
}

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Simulates a bucket that does not exist: every operation fails with BucketNotFound. */
  missing?: boolean;
  /** Size of the chunks `get` yields; small values exercise consumers' chunk handling. */
  chunkSize?: number;
}

/**
 * An {@link ObjectStore} kept in a Map; objects appear only after their stream completed, and
 * never replace one.
 */
export class MemoryStore implements ObjectStore {
  readonly provider = "memory" as const;
  readonly #objects = new Map<string, Entry>();
  readonly #missing: boolean;
  readonly #chunkSize: number;

  constructor(opts: MemoryStoreOptions = {}) {
    this.#missing = opts.missing ?? false;
    this.#chunkSize = opts.chunkSize ?? 64 * 1024;
  }

  async put(
    key: string,
    body: ReadableStream<Uint8Array>,
    opts: PutOptions = {},
  ): Promise<{ size: number }> {
    validateKey(key);
    const source = trackSource(body, opts.signal);
    try {
      throwIfAborted(opts.signal);
      this.#checkBucket();
      if (this.#objects.has(key)) throw alreadyExists();
      const chunks: Uint8Array[] = [];
      for await (const chunk of source.stream) chunks.push(chunk);
      throwIfAborted(opts.signal);
      // Checked again at the commit: another put may have completed meanwhile.
      if (this.#objects.has(key)) throw alreadyExists();
      const data = concat(chunks);
      this.#objects.set(key, {
        data,
        lastModified: new Date(),
        metadata: { ...opts.metadata },
      });
      return { size: data.byteLength };
    } catch (e) {
      await source.cancel(e);
      throw putFailure(e, source, { signal: opts.signal, map: unexpected });
    }
  }

  get(key: string, opts: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    return settle(opts.signal, () => this.#get(key, opts.signal));
  }

  #get(key: string, signal: AbortSignal | undefined): ReadableStream<Uint8Array> {
    validateKey(key);
    this.#checkBucket();
    const entry = this.#objects.get(key);
    if (!entry) throw new StorageError("NotFound", "Object not found");
    const { data } = entry;
    let offset = 0;
    const size = this.#chunkSize;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (signal?.aborted) return controller.error(signal.reason);
        if (offset >= data.byteLength) return controller.close();
        controller.enqueue(data.slice(offset, offset + size));
        offset += size;
      },
    });
  }

  head(key: string, opts: CallOptions = {}): Promise<ObjectHead | undefined> {
    return settle(opts.signal, () => {
      validateKey(key);
      this.#checkBucket();
      const entry = this.#objects.get(key);
      if (!entry) return undefined;
      return {
        key,
        size: entry.data.byteLength,
        lastModified: entry.lastModified,
        metadata: { ...entry.metadata },
      };
    });
  }

  list(prefix: string, opts: CallOptions = {}): Promise<ObjectInfo[]> {
    return settle(opts.signal, () => {
      validateKey(prefix, "prefix");
      this.#checkBucket();
      const out: ObjectInfo[] = [];
      for (const [key, entry] of this.#objects) {
        if (!key.startsWith(prefix)) continue;
        out.push({ key, size: entry.data.byteLength, lastModified: entry.lastModified });
      }
      return out.sort(byKey);
    });
  }

  delete(key: string, opts: CallOptions = {}): Promise<void> {
    return settle(opts.signal, () => {
      validateKey(key);
      this.#checkBucket();
      this.#objects.delete(key);
    });
  }

  probe(opts: CallOptions = {}): Promise<void> {
    return settle(opts.signal, () => this.#checkBucket());
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  #checkBucket(): void {
    if (this.#missing) throw new StorageError("BucketNotFound", "Bucket does not exist");
  }
}

/**
 * Runs `fn` unless `signal` fired, and turns a synchronous throw into a rejected promise, as an
 * async API must.
 */
function settle<T>(signal: AbortSignal | undefined, fn: () => T): Promise<T> {
  try {
    if (signal?.aborted) throw requestAborted(signal);
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e);
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const c of chunks) size += c.byteLength;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

function unexpected(e: unknown): StorageError {
  return new StorageError("StorageError", "Memory store failed", { cause: e });
}
