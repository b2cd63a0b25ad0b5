/**
 * An {@link ObjectStore} wrapper whose failures say which storage and which operation failed
 * (`BackupStorage "archive": list failed: ...`), so a Backup's, a Restore's or a schedule's
 * status names the BackupStorage to look at. The reason and the cause stay those of the
 * backend's StorageError; only its message gains the names (failedOperationMessage).
 *
 * A download can also fail after `get` returned, while its stream is read (a connection reset
 * halfway): the stream's error is named the same way. The SDKs raise those as plain network
 * errors, so they become StorageErrors here: Unreachable for a network code, else StorageError.
 */
import { NETWORK_ERROR_CODES } from "../lib/network.ts";
import { errorMessage } from "../lib/errors.ts";
import { failedOperationMessage, type StorageOperation } from "./errors.ts";
import {
  type CallOptions,
  type ObjectHead,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  StorageError,
} from "./store.ts";

/** Wraps `store` so that each StorageError it throws names `subject` and the operation. */
export function nameFailures(store: ObjectStore, subject: string): ObjectStore {
  return new NamedStore(store, subject);
}

class NamedStore implements ObjectStore {
  readonly provider: ObjectStore["provider"];
  readonly abortIncompleteUploads?: (key: string, opts?: CallOptions) => Promise<number>;

  constructor(private readonly inner: ObjectStore, private readonly subject: string) {
    this.provider = inner.provider;
    const abort = inner.abortIncompleteUploads;
    if (abort) {
      this.abortIncompleteUploads = (key, opts) =>
        this.#named("abort of incomplete uploads", () => abort.call(inner, key, opts));
    }
  }

  put(key: string, body: ReadableStream<Uint8Array>, opts?: PutOptions) {
    return this.#named("upload", () => this.inner.put(key, body, opts));
  }

  async get(key: string, opts?: CallOptions): Promise<ReadableStream<Uint8Array>> {
    const stream = await this.#named("download", () => this.inner.get(key, opts));
    return namedReads(stream, (e) => opts?.signal?.aborted ? e : this.#rename("download", e));
  }

  head(key: string, opts?: CallOptions): Promise<ObjectHead | undefined> {
    return this.#named("head", () => this.inner.head(key, opts));
  }

  list(prefix: string, opts?: CallOptions): Promise<ObjectInfo[]> {
    return this.#named("list", () => this.inner.list(prefix, opts));
  }

  delete(key: string, opts?: CallOptions): Promise<void> {
    return this.#named("delete", () => this.inner.delete(key, opts));
  }

  probe(opts?: CallOptions): Promise<void> {
    return this.#named("probe", () => this.inner.probe(opts));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  async #named<T>(operation: StorageOperation, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      if (!(e instanceof StorageError)) throw e;
      throw this.#rename(operation, e);
    }
  }

  #rename(operation: StorageOperation, e: unknown): StorageError {
    const reason = e instanceof StorageError
      ? e.reason
      : NETWORK_ERROR_CODES.has(codeOf(e) ?? "")
      ? "Unreachable"
      : "StorageError";
    const message = failedOperationMessage({
      subject: this.subject,
      operation,
      message: errorMessage(e),
    });
    return new StorageError(reason, message, { cause: e });
  }
}

function codeOf(e: unknown): string | undefined {
  const code = e instanceof Error ? (e as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/**
 * `source` read chunk by chunk (no buffering beyond the reader's: backpressure still reaches the
 * backend), with its error passed through `rename`; cancelling cancels `source`.
 */
function namedReads(
  source: ReadableStream<Uint8Array>,
  rename: (e: unknown) => unknown,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (e) {
        controller.error(rename(e));
        return;
      }
      if (chunk.done) controller.close();
      else controller.enqueue(chunk.value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
