/**
 * An {@link ObjectStore} wrapper whose failures say which storage and which operation failed
 * (`BackupStorage "archive": list failed: ...`), so a Backup's, a Restore's or a schedule's
 * status names the BackupStorage to look at. The reason and the cause stay those of the
 * backend's StorageError; only its message gains the names (failedOperationMessage).
 */
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

  get(key: string, opts?: CallOptions): Promise<ReadableStream<Uint8Array>> {
    return this.#named("download", () => this.inner.get(key, opts));
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
      const message = failedOperationMessage({
        subject: this.subject,
        operation,
        message: e.message,
      });
      throw new StorageError(e.reason, message, { cause: e });
    }
  }
}
