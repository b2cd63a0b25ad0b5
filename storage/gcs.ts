/**
 * Google Cloud Storage through `@google-cloud/storage`, with resumable uploads in chunks.
 *
 * Every chunk but the last is sent without the total size, so GCS finalizes the object only
 * when the last chunk arrives: a source that fails or a signal that aborts never reaches
 * that point. The session carries `ifGenerationMatch=0`, so GCS finalizes it only while the
 * key is free: a put never replaces an object. When the signal fires while the last chunk
 * completes the object, the put deletes that generation again (no_overwrite.ts).
 *
 * The library takes no AbortSignal outside its uploads (8.4: its promise methods cannot be
 * cancelled), so a call whose signal fires rejects at once and its request runs on unheard.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { File, Storage, StorageOptions } from "@google-cloud/storage";
import { CloudStore, type CloudStoreOptions, type StoredObject } from "./cloud.ts";
import {
  NETWORK_ERROR_CODES,
  storageErrorOf,
  type Subject,
  transportVerdict,
  unavailableDetail,
  unavailableStatus,
  type Verdict,
} from "./errors.ts";
import {
  type ObjectInfo,
  type PutOptions,
  type StaticCredentials,
  StorageError,
  type TrackedSource,
} from "./store.ts";

const MiB = 1024 * 1024;

/**
 * Options of {@link GcsStore}. `endpoint` is an emulator's or a private endpoint's URL; without a
 * service-account JSON key in `credentials`, Application Default Credentials are used, whose
 * `env` holds GOOGLE_APPLICATION_CREDENTIALS (a service-account or external-account JSON file)
 * and GOOGLE_CLOUD_PROJECT.
 */
export interface GcsStoreOptions extends CloudStoreOptions {
  bucket: string;
  project?: string | undefined;
  /** Resumable upload chunk size, a multiple of 256 KiB; memory use is about one chunk. */
  chunkSize?: number | undefined;
}

/** An {@link ObjectStore} on one GCS bucket. */
export class GcsStore extends CloudStore {
  readonly provider = "gcs" as const;
  readonly #storage: Promise<Storage>;
  readonly #bucketName: string;
  readonly #chunkSize: number;

  constructor(opts: GcsStoreOptions) {
    super();
    this.#bucketName = opts.bucket;
    this.#chunkSize = Math.max(1, Math.round((opts.chunkSize ?? 8 * MiB) / (256 * 1024))) *
      256 * 1024;
    const options = storageOptions(opts);
    // Imported on first use: a process that never talks to GCS does not pay its memory.
    this.#storage = import("@google-cloud/storage").then((m) => new m.Storage(options));
    this.#storage.catch(() => {});
  }

  protected async upload(key: string, source: TrackedSource, opts: PutOptions): Promise<void> {
    const metadata = {
      ...(opts.contentType ? { contentType: opts.contentType } : {}),
      ...(opts.metadata ? { metadata: opts.metadata } : {}),
    };
    const file = await this.#file(key);
    // The session is opened separately because createWriteStream forgets
    // useAuthWithCustomEndpoint when it opens one itself (@google-cloud/storage 8.4), so
    // no credentials would reach a custom endpoint. The session URI is the capability the
    // chunk uploads need; it lets us cancel the session on failure, too. The precondition is
    // part of the session: GCS finalizes the object only while the key is free.
    const [session] = await file.createResumableUpload({
      metadata,
      preconditionOpts: { ifGenerationMatch: 0 },
    });
    try {
      const writable = file.createWriteStream({
        resumable: true,
        uri: session,
        // A fresh session is at 0; without it the library first asks the server for the
        // offset, which fake-gcs-server answers with 404.
        offset: 0,
        chunkSize: this.#chunkSize,
        metadata,
      });
      // deno-lint-ignore no-explicit-any
      await pipeline(Readable.fromWeb(source.stream as any), writable);
    } catch (e) {
      await cancelSession(session);
      throw e;
    }
  }

  /** Deletes exactly `generation` of the object at `key` (a newer one stays). */
  protected async remove(key: string, generation: string): Promise<void> {
    const file = (await this.#storage).bucket(this.#bucketName).file(key, {
      generation: Number(generation),
    });
    await file.delete({ ignoreNotFound: true });
  }

  protected async stat(key: string): Promise<StoredObject> {
    const [m] = await (await this.#file(key)).getMetadata();
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.metadata ?? {})) {
      if (v !== null && v !== undefined) metadata[k] = String(v);
    }
    return {
      key,
      size: Number(m.size ?? 0),
      lastModified: new Date(m.updated ?? 0),
      metadata,
      version: String(m.generation),
    };
  }

  protected async download(key: string): Promise<ReadableStream<Uint8Array>> {
    const file = await this.#file(key);
    // Fails early with NotFound instead of as a stream error on the first read.
    await file.getMetadata();
    // Under Deno the library's read pipeline prints a MaxListenersExceededWarning once per
    // download; it is harmless (listeners of one finished pipeline), not a leak across calls.
    return ReadableStream.from<Uint8Array>(file.createReadStream());
  }

  protected async listAll(prefix: string): Promise<ObjectInfo[]> {
    const [files] = await (await this.#storage).bucket(this.#bucketName).getFiles({
      autoPaginate: true,
      ...(prefix ? { prefix } : {}),
    });
    return files.map((f) => ({
      key: f.name,
      size: Number(f.metadata.size ?? 0),
      lastModified: new Date(f.metadata.updated ?? 0),
    }));
  }

  protected async deleteObject(key: string): Promise<void> {
    await (await this.#file(key)).delete({ ignoreNotFound: true });
  }

  protected async probeBucket(): Promise<void> {
    // Writing is the check: roles/storage.objectAdmin grants no storage.buckets.get.
    const file = await this.#file(`.dbtether-probe/${crypto.randomUUID()}`);
    await file.save(new Uint8Array(), { resumable: false });
    await file.delete({ ignoreNotFound: true });
  }

  protected mapError(e: unknown, what: Subject): StorageError {
    return mapGcsError(e, this.#bucketName, what);
  }

  async #file(key: string): Promise<File> {
    return (await this.#storage).bucket(this.#bucketName).file(key);
  }
}

/**
 * Cancels a resumable upload session (GCS answers 499). Unfinished sessions never become
 * objects anyway; cancelling frees them now instead of after a week. Best effort.
 */
async function cancelSession(uri: string): Promise<void> {
  try {
    const res = await fetch(uri, { method: "DELETE", signal: AbortSignal.timeout(10_000) });
    await res.body?.cancel();
  } catch {
    // The session expires by itself.
  }
}

function storageOptions(opts: GcsStoreOptions): StorageOptions {
  const env = opts.env ?? {};
  const project = opts.project ?? env["GOOGLE_CLOUD_PROJECT"];
  const o: StorageOptions = {
    ...(project ? { projectId: project } : {}),
    retryOptions: { autoRetry: true, maxRetries: 3 },
  };
  if (opts.endpoint) {
    o.apiEndpoint = opts.endpoint;
    // Without this the library sends no credentials to a custom endpoint at all.
    o.useAuthWithCustomEndpoint = opts.credentials !== undefined ||
      env["GOOGLE_APPLICATION_CREDENTIALS"] !== undefined;
  }
  if (opts.credentials) {
    o.credentials = serviceAccountKey(opts.credentials);
  } else if (env["GOOGLE_APPLICATION_CREDENTIALS"]) {
    // Read here rather than passed as keyFilename, which the library deprecates.
    o.credentials = adcFile(env["GOOGLE_APPLICATION_CREDENTIALS"]);
  }
  return o;
}

function serviceAccountKey(c: StaticCredentials): NonNullable<StorageOptions["credentials"]> {
  const json = c["credentials.json"] ?? c["key.json"] ?? c["serviceAccountKey"];
  if (!json) {
    throw new StorageError(
      "CredentialsMissing",
      "GCS credentials are incomplete: a service-account JSON key is required",
    );
  }
  try {
    return JSON.parse(json);
  } catch {
    throw new StorageError("InvalidConfiguration", "GCS service-account key is not valid JSON");
  }
}

function adcFile(path: string): NonNullable<StorageOptions["credentials"]> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    throw new StorageError(
      "CredentialsMissing",
      "GCS credentials file (GOOGLE_APPLICATION_CREDENTIALS) cannot be read",
    );
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new StorageError("InvalidConfiguration", "GCS credentials file is not valid JSON");
  }
}

/** Maps a GCS client error to a StorageError whose message names no key and no secret. */
export function mapGcsError(e: unknown, bucket: string, what: Subject): StorageError {
  if (e instanceof StorageError) return e;
  return storageErrorOf(e, gcsVerdict(e, what), { provider: "GCS", noun: "bucket", name: bucket });
}

function gcsVerdict(e: unknown, what: Subject): Verdict {
  const err = (e ?? {}) as {
    code?: number | string;
    message?: string;
    cause?: { code?: string };
    errors?: { reason?: string; message?: string }[];
  };
  const status = typeof err.code === "number" ? err.code : Number(err.code) || undefined;
  const code = typeof err.code === "string" ? err.code : err.cause?.code ?? "";
  const message = err.message ?? "";
  const transport = transportVerdict(e, "GCS");
  if (transport) return transport;
  const bucketMissing = /bucket/i.test(message) && /not (exist|found)/i.test(message);
  if (status === 404 && (what === "bucket" || bucketMissing)) return { reason: "BucketNotFound" };
  if (status === 404) return { reason: "NotFound" };
  // ifGenerationMatch=0 refused: the key holds an object.
  if (status === 412) return { reason: "AlreadyExists" };
  if (status === 401 || status === 403) return { reason: "AccessDenied", detail: `HTTP ${status}` };
  if (/default credentials|could not load the credentials|no credentials/i.test(message)) {
    return {
      reason: "CredentialsMissing",
      message:
        "No GCS credentials: no service-account key and no Application Default Credentials found",
    };
  }
  // 503 or 429 (rateLimitExceeded): the service answered that it cannot serve now.
  if (unavailableStatus(status)) {
    return { reason: "Unavailable", detail: unavailableDetail(status, "") };
  }
  const lost = /ECONNREFUSED|ENOTFOUND|ETIMEDOUT|socket hang up/.test(message);
  if (NETWORK_ERROR_CODES.has(code) || lost) {
    return { reason: "Unreachable", detail: code || "connection failed" };
  }
  const detail = status ? `HTTP ${status}` : (e instanceof Error ? e.name : "unknown error");
  return { reason: "StorageError", detail };
}
