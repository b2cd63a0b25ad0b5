/**
 * The one interface every storage backend implements. Keys are '/'-separated paths without a
 * leading slash; a backend maps them onto its own namespace (bucket, container, directory).
 */
import { DbtetherError } from "../lib/errors.ts";

/** Why a storage operation failed, as a CamelCase reason for status conditions. */
export type StorageErrorReason =
  | "BucketNotFound"
  | "AccessDenied"
  | "CredentialsMissing"
  | "InvalidConfiguration"
  | "Unreachable"
  /**
   * The storage answered, but said it cannot serve now: HTTP 503 (S3's ServiceUnavailable or
   * SlowDown, Azure's ServerBusy) or 429 (throttling). Retrying later can help.
   */
  | "Unavailable"
  | "NotFound"
  | "Aborted"
  /** A put found an object at its key: stored objects are never overwritten. */
  | "AlreadyExists"
  /**
   * The storage took no bytes, or did not answer, for the stall timeout (stall_guard.ts): it
   * accepts connections but has stopped working.
   */
  | "Stalled"
  | "StorageError";

/**
 * A storage failure; `message` never contains credentials. Only InvalidConfiguration (a bad
 * URL, key or metadata key: the spec's fault) is terminal; the rest can heal outside the spec
 * (a bucket created, a role granted, the server back).
 */
export class StorageError extends DbtetherError<StorageErrorReason> {
  override name = "StorageError";
  constructor(reason: StorageErrorReason, message: string, options?: ErrorOptions) {
    super(reason, message, { ...options, terminal: reason === "InvalidConfiguration" });
  }
}

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

/** What `head` returns: the object's info and its metadata. */
export interface ObjectHead extends ObjectInfo {
  metadata: Record<string, string>;
}

/** Orders objects by key, as `list` returns them. */
export function byKey(a: ObjectInfo, b: ObjectInfo): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Options of every {@link ObjectStore} call. */
export interface CallOptions {
  /**
   * Cancels the call: it rejects with StorageError("Aborted") at once, and a call that had not
   * started changes nothing.
   */
  signal?: AbortSignal | undefined;
}

export interface PutOptions extends CallOptions {
  /**
   * Aborting removes whatever part of the object was written (no object, no upload left), also
   * when the abort arrives while the server completes the object.
   */
  signal?: AbortSignal;
  contentType?: string;
  /**
   * Small string metadata stored with the object. Portable keys are lower-case ASCII letters,
   * digits and '-' (not starting with a digit): Azure stores '-' as '_' and reads it back as
   * '-', so a key with '_' would not read back unchanged there.
   */
  metadata?: Record<string, string>;
}

export interface ObjectStore {
  readonly provider: "s3" | "gcs" | "azure" | "local" | "memory";
  /**
   * Writes the stream to a new object at `key`. The object becomes visible at `key` only when
   * the whole stream was written; if the stream errors or the signal aborts, nothing is left
   * behind. Never overwrites: when an object exists at `key` (or another writer creates one
   * first), put fails with StorageError("AlreadyExists") and that object stays as it was.
   */
  put(key: string, body: ReadableStream<Uint8Array>, opts?: PutOptions): Promise<{ size: number }>;
  /**
   * Reads an object; throws StorageError("NotFound") when it does not exist. The signal also
   * cancels the stream.
   */
  get(key: string, opts?: CallOptions): Promise<ReadableStream<Uint8Array>>;
  /** Metadata of one object, or undefined when it does not exist. */
  head(key: string, opts?: CallOptions): Promise<ObjectHead | undefined>;
  /** Every object whose key starts with `prefix` (a plain string prefix), sorted by key. */
  list(prefix: string, opts?: CallOptions): Promise<ObjectInfo[]>;
  /** Deletes an object; deleting a missing object succeeds. */
  delete(key: string, opts?: CallOptions): Promise<void>;
  /** Checks that the bucket/container exists and is writable; throws StorageError. */
  probe(opts?: CallOptions): Promise<void>;
  /** Releases clients and sockets. */
  close(): Promise<void>;
  /**
   * Removes what an interrupted put to `key` left behind when it could not clean up itself
   * (the process crashed, or the server was gone when the put tried): S3 incomplete multipart
   * uploads, local temporary files. Returns how many it removed. Call it before retrying a put
   * to the same deterministic key, never while another put to that key may be running.
   * Optional (added after the first version): GCS resumable sessions and Azure uncommitted
   * blocks are invisible and expire by themselves, so those backends do not implement it.
   */
  abortIncompleteUploads?(key: string, opts?: CallOptions): Promise<number>;
}

/** Which backend and where: mirrors BackupStorage's spec (exactly one field set). */
export interface StorageLocation {
  s3?: { bucket: string; region?: string; endpoint?: string; forcePathStyle?: boolean };
  gcs?: { bucket: string; project?: string; endpoint?: string };
  azure?: { storageAccount: string; container: string; endpoint?: string };
  local?: { path: string };
}

/**
 * Static credentials from a Secret's data, already decoded. Absent means the cloud's
 * workload identity through the SDK's default chain. Recognised keys:
 * - S3: `accessKeyId` / `AWS_ACCESS_KEY_ID`, `secretAccessKey` / `AWS_SECRET_ACCESS_KEY`,
 *   optional `sessionToken` / `AWS_SESSION_TOKEN`
 * - GCS: `credentials.json` / `key.json` / `serviceAccountKey` (a service-account JSON key)
 * - Azure: `accountKey` / `AZURE_STORAGE_KEY`, or `sasToken` / `AZURE_STORAGE_SAS_TOKEN`,
 *   or `connectionString` / `AZURE_STORAGE_CONNECTION_STRING`
 */
export type StaticCredentials = Record<string, string>;

// ---------------------------------------------------------------------------------------------
// Helpers shared by the backends. They live here (an additive, compatible extension of this
// module) so every backend validates keys and classifies put failures the same way.

/**
 * Rejects keys that are not portable object names: empty, a leading slash, empty, `.` or `..`
 * segments, or control characters. `..` matters most: the local backend maps keys onto a
 * directory, and a key must never escape it. The message never repeats the key.
 */
export function validateKey(key: string, what = "object key"): void {
  const problem = keyProblem(key, what === "prefix");
  if (problem) throw new StorageError("InvalidConfiguration", `Invalid ${what}: ${problem}`);
}

function keyProblem(key: string, isPrefix: boolean): string | undefined {
  if (key === "") return isPrefix ? undefined : "it is empty";
  if (key.startsWith("/")) return "it starts with '/'";
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) return "it contains control characters";
  const segments = key.split("/");
  for (const [i, s] of segments.entries()) {
    if (s === "." || s === "..") return `it contains a '${s}' segment`;
    // A prefix may end with '/', so only its last segment may be empty.
    if (s === "" && !(isPrefix && i === segments.length - 1)) return "it contains an empty segment";
  }
  return undefined;
}

/** A source stream wrapped so that a backend can tell a failing source from its own failure. */
export interface TrackedSource {
  readonly stream: ReadableStream<Uint8Array>;
  /** Bytes read from the source so far. */
  readonly bytes: number;
  /** Set when the source stream itself errored (for example pg_dump died). */
  readonly failed: boolean;
  /** Set when the source ended cleanly: only then can the server have completed an object. */
  readonly ended: boolean;
  readonly error: unknown;
  /** Cancels the source (after a storage failure, so the producer stops); never throws. */
  cancel(reason?: unknown): Promise<void>;
}

/**
 * Wraps `body` so that bytes are counted, a source error is remembered, and an abort of
 * `signal` errors the stream (which makes the SDK's upload fail and clean up).
 */
export function trackSource(body: ReadableStream<Uint8Array>, signal?: AbortSignal): TrackedSource {
  const reader = body.getReader();
  const state = { bytes: 0, failed: false, ended: false, error: undefined as unknown };
  let onAbort: (() => void) | undefined;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      if (!signal) return;
      onAbort = () => {
        controller.error(signal.reason);
        reader.cancel(signal.reason).catch(() => {});
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    },
    async pull(controller) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        if (!signal?.aborted) Object.assign(state, { failed: true, error: e });
        if (onAbort) signal?.removeEventListener("abort", onAbort);
        controller.error(e);
        return;
      }
      if (r.done) {
        if (onAbort) signal?.removeEventListener("abort", onAbort);
        state.ended = true;
        controller.close();
        return;
      }
      state.bytes += r.value.byteLength;
      controller.enqueue(r.value);
    },
    cancel(reason) {
      if (onAbort) signal?.removeEventListener("abort", onAbort);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return {
    stream,
    get bytes() {
      return state.bytes;
    },
    get failed() {
      return state.failed;
    },
    get ended() {
      return state.ended;
    },
    get error() {
      return state.error;
    },
    cancel: (reason) => reader.cancel(reason).catch(() => {}),
  };
}

/**
 * The error a failed `put` reports: `Aborted` when the signal fired, the source's own error
 * when the source stream failed (so a caller sees "pg_dump died", not a storage error), and
 * otherwise the backend's mapped error.
 */
export function putFailure(
  e: unknown,
  source: TrackedSource,
  opts: { signal?: AbortSignal | undefined; map: (e: unknown) => StorageError },
): unknown {
  if (opts.signal?.aborted) {
    return new StorageError("Aborted", "Upload aborted", { cause: opts.signal.reason });
  }
  if (source.failed) return source.error;
  return e instanceof StorageError ? e : opts.map(e);
}

/** Throws StorageError("Aborted") when the signal has already fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new StorageError("Aborted", "Upload aborted", { cause: signal.reason });
  }
}

/** Ties a download stream to a signal: aborting cancels the source and errors the reader. */
export function abortable(
  stream: ReadableStream<Uint8Array>,
  signal: AbortSignal | undefined,
): ReadableStream<Uint8Array> {
  if (!signal) return stream;
  const reader = stream.getReader();
  const onAbort = () => reader.cancel(signal.reason).catch(() => {});
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (signal.aborted) {
        controller.error(signal.reason);
        void onAbort();
        return;
      }
      signal.addEventListener("abort", () => {
        controller.error(signal.reason);
        void onAbort();
      }, { once: true });
    },
    async pull(controller) {
      try {
        const r = await reader.read();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      } catch (e) {
        controller.error(signal.aborted ? signal.reason : e);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
