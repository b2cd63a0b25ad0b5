/**
 * Amazon S3 and S3-compatible servers (MinIO, Ceph, R2, ...).
 *
 * Uploads are our own multipart loop on `@aws-sdk/client-s3` rather than lib-storage's Upload:
 * parts are copied into a few reused buffers (lib-storage concatenates the stream's chunks into a
 * fresh buffer per part and keeps the remainder's whole backing store alive), and the part size
 * grows as the upload proceeds, so small dumps use small parts while a 10,000-part upload still
 * reaches ~4.9 TiB. Memory: about (queueSize + 1) × 5 MiB up to 5 GiB, see PARTS_PER_STEP.
 *
 * A put never overwrites: PutObject and CompleteMultipartUpload carry `If-None-Match: *`, and
 * a refusal is told from the SDK's retry of our own completed request by the put token
 * (no_overwrite.ts). A failed or aborted put must leave no incomplete multipart upload: we
 * abort it by its id (in-flight parts are cancelled first); `abortIncompleteUploads` removes
 * what a crash or an unreachable server left behind.
 *
 * The SDK is imported on first use, so a process that never talks to S3 does not pay its
 * memory (about 25 MiB of RSS).
 */
import type { CompletedPart, S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import type { Logger } from "../lib/log.ts";
import {
  alreadyExists,
  conditionalPut,
  PUT_TOKEN_KEY,
  type StoredVersion,
  withoutPutToken,
} from "./no_overwrite.ts";
import {
  abortable,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type StaticCredentials,
  StorageError,
  type TrackedSource,
  validateKey,
} from "./store.ts";

const MiB = 1024 * 1024;
const sdk = () => import("@aws-sdk/client-s3");
type Sdk = Awaited<ReturnType<typeof sdk>>;
/** S3's limits: parts of 5 MiB to 5 GiB (but the last), at most 10,000 of them. */
const MIN_PART = 5 * MiB;
const MAX_PART = 5 * 1024 * MiB;
/**
 * The part size doubles every this many parts: 1,000 parts of 5 MiB cover 5 GiB, and 10,000
 * parts starting at 5 MiB cover 4.9 TiB (5 MiB × 1,000 × (2^10 − 1)), near S3's 5 TiB limit.
 */
const PARTS_PER_STEP = 1000;

/** Options of {@link S3Store}. */
export interface S3StoreOptions {
  bucket: string;
  region?: string | undefined;
  /** An S3-compatible server's URL; path-style addressing is usually needed with it. */
  endpoint?: string | undefined;
  forcePathStyle?: boolean | undefined;
  /** Static keys; absent means the SDK's default chain (IRSA / EKS Pod Identity, ...). */
  credentials?: StaticCredentials | undefined;
  /**
   * Workload-identity settings passed to the SDK explicitly instead of through the process
   * environment: AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME,
   * AWS_ENDPOINT_URL_STS, AWS_REGION / AWS_DEFAULT_REGION.
   */
  env?: Record<string, string | undefined> | undefined;
  logger?: Logger | undefined;
  /**
   * First multipart part size (at least 5 MiB, default 5 MiB); doubles every 1,000 parts.
   * Memory use is about (queueSize + 1) × partSize while parts are that small.
   */
  partSize?: number | undefined;
  /**
   * Parts uploaded concurrently while the part size is the first one; default 2. Larger parts
   * keep the bytes in flight to queueSize × partSize (at least one part).
   */
  queueSize?: number | undefined;
}

/** An {@link ObjectStore} on one S3 bucket. */
export class S3Store implements ObjectStore {
  readonly provider = "s3" as const;
  readonly #client: Promise<S3Client>;
  readonly #bucket: string;
  readonly #logger: Logger | undefined;
  readonly #partSize: number;
  readonly #queueSize: number;

  constructor(opts: S3StoreOptions) {
    this.#bucket = opts.bucket;
    this.#logger = opts.logger;
    this.#partSize = Math.min(MAX_PART, Math.max(MIN_PART, opts.partSize ?? MIN_PART));
    this.#queueSize = Math.max(1, opts.queueSize ?? 2);
    const config = clientConfig(opts);
    this.#client = sdk().then((m) => new m.S3Client(config));
    // A failed import surfaces in the first operation, not as an unhandled rejection.
    this.#client.catch(() => {});
  }

  async put(
    key: string,
    body: ReadableStream<Uint8Array>,
    opts: PutOptions = {},
  ): Promise<{ size: number }> {
    validateKey(key);
    return await conditionalPut({ body, opts }, {
      upload: (source, metadata) => this.#upload(key, source, { ...opts, metadata }),
      inspect: () => this.#inspect(key),
      remove: (etag) => this.#remove(key, etag),
      map: (e) => this.#map(e),
    });
  }

  /**
   * One upload, conditional on the key being free: a single PutObject for a small stream,
   * else a multipart upload that is aborted by its id when anything fails.
   */
  async #upload(key: string, source: TrackedSource, opts: PutOptions): Promise<void> {
    // Cancels in-flight requests when the put fails (a part failed, the source failed).
    const requests = new AbortController();
    try {
      await this.#send(key, source, opts, requests);
    } catch (e) {
      requests.abort(e);
      throw e;
    }
  }

  async #send(
    key: string,
    source: TrackedSource,
    opts: PutOptions,
    requests: AbortController,
  ): Promise<void> {
    const target = { Bucket: this.#bucket, Key: key };
    const [m, client] = await Promise.all([sdk(), this.#client]);
    const send = { abortSignal: requests.signal };
    const parts = new PartReader(source.stream);
    const first = await parts.next(this.#partSize);
    const headers = {
      ...(opts.contentType ? { ContentType: opts.contentType } : {}),
      ...(opts.metadata ? { Metadata: opts.metadata } : {}),
    };
    if (first.last) {
      await client.send(
        new m.PutObjectCommand({
          ...target,
          ...headers,
          ...partBody(first.data),
          IfNoneMatch: "*",
        }),
        send,
      );
      return;
    }
    const created = await client.send(
      new m.CreateMultipartUploadCommand({ ...target, ...headers }),
      send,
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw new StorageError("StorageError", "S3 returned no multipart upload id");
    try {
      const upload = { m, client, target: { ...target, UploadId: uploadId }, requests };
      const done = await this.#uploadParts(upload, parts, first);
      await client.send(
        new m.CompleteMultipartUploadCommand({
          ...upload.target,
          MultipartUpload: { Parts: done },
          IfNoneMatch: "*",
        }),
        send,
      );
    } catch (e) {
      requests.abort(e);
      await this.#abortUpload(key, uploadId);
      throw e;
    }
  }

  /** The object at `key` with its put token and ETag, or undefined. */
  async #inspect(key: string): Promise<StoredVersion | undefined> {
    const { HeadObjectCommand } = await sdk();
    try {
      const res = await (await this.#client).send(
        new HeadObjectCommand({ Bucket: this.#bucket, Key: key }),
      );
      return { token: res.Metadata?.[PUT_TOKEN_KEY], version: res.ETag ?? "" };
    } catch (e) {
      if (this.#map(e, "object").reason === "NotFound") return undefined;
      throw e;
    }
  }

  /**
   * Deletes the object at `key` if its ETag is still `etag` (S3 honours If-Match on
   * DeleteObject; servers that ignore it delete unconditionally, which no-overwrite makes safe
   * in all but a race with a delete and a new put in between).
   */
  async #remove(key: string, etag: string): Promise<void> {
    const { DeleteObjectCommand } = await sdk();
    try {
      await (await this.#client).send(
        new DeleteObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          ...(etag ? { IfMatch: etag } : {}),
        }),
      );
    } catch (e) {
      const reason = this.#map(e, "object").reason;
      // Gone, or replaced since: either way not ours to delete any more.
      if (reason !== "NotFound" && reason !== "AlreadyExists") throw e;
    }
  }

  /** Uploads `first` and every following part, a bounded number at a time; in part order. */
  async #uploadParts(
    u: { m: Sdk; client: S3Client; target: UploadTarget; requests: AbortController },
    parts: PartReader,
    first: Part,
  ): Promise<CompletedPart[]> {
    const done: CompletedPart[] = [];
    const running = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let part = first;
    for (let n = 1;; n++) {
      if (part.data.byteLength === 0 && n > 1) break; // the input ended on a part boundary
      const PartNumber = n;
      const { data } = part;
      const request = u.client.send(
        new u.m.UploadPartCommand({ ...u.target, PartNumber, ...partBody(data) }),
        { abortSignal: u.requests.signal },
      ).then((res) => {
        done.push({ PartNumber, ...(res.ETag ? { ETag: res.ETag } : {}) });
        parts.recycle(data.buffer as ArrayBuffer);
      }).catch((error: unknown) => {
        failure ??= { error };
        u.requests.abort(error);
      }).finally(() => running.delete(request));
      running.add(request);
      if (part.last) break;
      const size = partSize(this.#partSize, n + 1);
      // Bytes in flight stay at queueSize × the first part size (at least one part).
      const limit = Math.max(1, Math.floor((this.#queueSize * this.#partSize) / size));
      while (running.size >= limit && !failure) await Promise.race(running);
      if (failure) break;
      part = await parts.next(size);
    }
    await Promise.all(running);
    if (failure) throw failure.error;
    return done.sort((a, b) => a.PartNumber! - b.PartNumber!);
  }

  async get(key: string, opts: { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
    validateKey(key);
    try {
      const { GetObjectCommand } = await sdk();
      const res = await (await this.#client).send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: key }),
        opts.signal ? { abortSignal: opts.signal } : {},
      );
      if (!res.Body) throw new StorageError("StorageError", "S3 returned an object without a body");
      return abortable(res.Body.transformToWebStream() as ReadableStream<Uint8Array>, opts.signal);
    } catch (e) {
      throw this.#map(e, "object");
    }
  }

  async head(
    key: string,
  ): Promise<(ObjectInfo & { metadata: Record<string, string> }) | undefined> {
    validateKey(key);
    try {
      const { HeadObjectCommand } = await sdk();
      const res = await (await this.#client).send(
        new HeadObjectCommand({ Bucket: this.#bucket, Key: key }),
      );
      return {
        key,
        size: res.ContentLength ?? 0,
        lastModified: res.LastModified ?? new Date(0),
        metadata: withoutPutToken({ ...res.Metadata }),
      };
    } catch (e) {
      const mapped = this.#map(e, "object");
      if (mapped.reason === "NotFound") return undefined;
      throw mapped;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validateKey(prefix, "prefix");
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      const { ListObjectsV2Command } = await sdk();
      const client = await this.#client;
      do {
        const res = await client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        );
        for (const o of res.Contents ?? []) {
          if (o.Key === undefined) continue;
          out.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) });
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      throw this.#map(e);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    try {
      const { DeleteObjectCommand } = await sdk();
      await (await this.#client).send(
        new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }),
      );
    } catch (e) {
      const mapped = this.#map(e, "object");
      if (mapped.reason !== "NotFound") throw mapped;
    }
  }

  async probe(): Promise<void> {
    const key = `.dbtether-probe/${crypto.randomUUID()}`;
    try {
      const { HeadBucketCommand, PutObjectCommand, DeleteObjectCommand } = await sdk();
      const client = await this.#client;
      await client.send(new HeadBucketCommand({ Bucket: this.#bucket }));
      await client.send(
        new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: new Uint8Array() }),
      );
      await client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }));
    } catch (e) {
      throw this.#map(e);
    }
  }

  async abortIncompleteUploads(key: string): Promise<number> {
    validateKey(key);
    let aborted = 0;
    try {
      const { ListMultipartUploadsCommand } = await sdk();
      const client = await this.#client;
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const res = await client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.#bucket,
            Prefix: key,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
          }),
        );
        for (const u of res.Uploads ?? []) {
          if (u.Key !== key || !u.UploadId) continue;
          await this.#abortUpload(key, u.UploadId, { throwOnError: true });
          aborted++;
        }
        const more = res.IsTruncated === true;
        keyMarker = more ? res.NextKeyMarker : undefined;
        uploadIdMarker = more ? res.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (e) {
      throw this.#map(e);
    }
    return aborted;
  }

  async close(): Promise<void> {
    (await this.#client.catch(() => undefined))?.destroy();
  }

  async #abortUpload(
    key: string,
    uploadId: string,
    opts: { throwOnError?: boolean } = {},
  ): Promise<void> {
    try {
      const { AbortMultipartUploadCommand } = await sdk();
      await (await this.#client).send(
        new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId: uploadId }),
      );
    } catch (e) {
      // NoSuchUpload: lib-storage already aborted it, which is the usual case.
      if (this.#map(e, "object").reason === "NotFound") return;
      if (opts.throwOnError) throw e;
      this.#logger?.warn("Cannot abort an incomplete multipart upload", {
        bucket: this.#bucket,
        error: this.#map(e).message,
      });
    }
  }

  /** Maps an SDK error; `what` says whether a 404 means the object or the bucket. */
  #map(e: unknown, what: "bucket" | "object" = "bucket"): StorageError {
    return mapS3Error(e, this.#bucket, what);
  }
}

interface UploadTarget {
  Bucket: string;
  Key: string;
  UploadId: string;
}

/** Size of part `n` (1-based): `first`, doubled every PARTS_PER_STEP parts, at most 5 GiB. */
export function partSize(first: number, n: number): number {
  return Math.min(MAX_PART, first * 2 ** Math.floor((n - 1) / PARTS_PER_STEP));
}

function partBody(data: Uint8Array) {
  return { Body: data, ContentLength: data.byteLength };
}

interface Part {
  data: Uint8Array;
  /** The source ended with this part. */
  last: boolean;
}

/**
 * Cuts a stream into parts, copying its chunks into reused buffers: a buffer comes back through
 * `recycle` once its part was uploaded.
 */
class PartReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #spare: ArrayBuffer[] = [];
  #leftover: Uint8Array | undefined;

  constructor(source: ReadableStream<Uint8Array>) {
    this.#reader = source.getReader();
  }

  async next(size: number): Promise<Part> {
    let buf = this.#spare.pop();
    if (!buf || buf.byteLength !== size) buf = new ArrayBuffer(size);
    let length = 0;
    while (length < size) {
      const chunk = this.#leftover ?? (await this.#reader.read()).value;
      if (!chunk) return { data: new Uint8Array(buf, 0, length), last: true };
      const n = Math.min(chunk.byteLength, size - length);
      new Uint8Array(buf, length, n).set(chunk.subarray(0, n));
      this.#leftover = n < chunk.byteLength ? chunk.subarray(n) : undefined;
      length += n;
    }
    return { data: new Uint8Array(buf), last: false };
  }

  recycle(buf: ArrayBuffer): void {
    this.#spare.push(buf);
  }
}

function clientConfig(opts: S3StoreOptions): S3ClientConfig {
  const env = opts.env ?? {};
  const region = opts.region ?? env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ??
    (opts.endpoint ? "us-east-1" : undefined);
  const config: S3ClientConfig & Record<string, unknown> = {
    ...(region ? { region } : {}),
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.forcePathStyle ? { forcePathStyle: true } : {}),
    maxAttempts: 3,
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
  };
  if (opts.endpoint) {
    // S3-compatible servers vary in their support of the newer default checksums.
    config.requestChecksumCalculation = "WHEN_REQUIRED";
    config.responseChecksumValidation = "WHEN_REQUIRED";
  }
  if (opts.credentials) {
    config.credentials = staticCredentials(opts.credentials);
  } else {
    // The default chain passes the client's config on to its providers (fromTokenFile reads
    // webIdentityTokenFile/roleArn there before process.env, and the STS client it builds
    // takes `clientConfig`), so explicit workload-identity settings need no process env.
    const file = env["AWS_WEB_IDENTITY_TOKEN_FILE"];
    const role = env["AWS_ROLE_ARN"];
    if (file) config["webIdentityTokenFile"] = file;
    if (role) config["roleArn"] = role;
    if (env["AWS_ROLE_SESSION_NAME"]) config["roleSessionName"] = env["AWS_ROLE_SESSION_NAME"];
    const sts = env["AWS_ENDPOINT_URL_STS"];
    if (sts) config["clientConfig"] = { endpoint: sts, ...(region ? { region } : {}) };
  }
  return config;
}

function staticCredentials(c: StaticCredentials) {
  const accessKeyId = c["accessKeyId"] ?? c["AWS_ACCESS_KEY_ID"];
  const secretAccessKey = c["secretAccessKey"] ?? c["AWS_SECRET_ACCESS_KEY"];
  const sessionToken = c["sessionToken"] ?? c["AWS_SESSION_TOKEN"];
  if (!accessKeyId || !secretAccessKey) {
    throw new StorageError(
      "CredentialsMissing",
      "S3 credentials are incomplete: accessKeyId and secretAccessKey are required",
    );
  }
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}

const ACCESS_DENIED = new Set([
  "AccessDenied",
  "Forbidden",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "AllAccessDisabled",
  "AccountProblem",
]);
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "TimeoutError",
  "RequestTimeout",
]);

/** Maps an AWS SDK error to a StorageError whose message names no key and no secret. */
export function mapS3Error(e: unknown, bucket: string, what: "bucket" | "object"): StorageError {
  if (e instanceof StorageError) return e;
  const err = (e ?? {}) as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    cause?: { code?: string };
  };
  const name = err.name ?? "Error";
  const code = err.code ?? err.cause?.code ?? "";
  const status = err.$metadata?.httpStatusCode;
  const detail = status ? `${name} (HTTP ${status})` : name;
  // A conditional write refused (412), or racing another conditional write (409).
  if (
    name === "PreconditionFailed" || name === "ConditionalRequestConflict" || status === 412
  ) {
    return alreadyExists(e);
  }
  if (name === "NoSuchBucket" || (what === "bucket" && (name === "NotFound" || status === 404))) {
    return new StorageError("BucketNotFound", `S3 bucket "${bucket}" does not exist`, { cause: e });
  }
  if (name === "NoSuchKey" || name === "NoSuchUpload" || name === "NotFound" || status === 404) {
    return new StorageError("NotFound", "Object not found", { cause: e });
  }
  if (ACCESS_DENIED.has(name) || status === 403) {
    return new StorageError("AccessDenied", `S3 access to bucket "${bucket}" denied: ${detail}`, {
      cause: e,
    });
  }
  if (name === "CredentialsProviderError" || name === "CredentialsMissing") {
    return new StorageError(
      "CredentialsMissing",
      "No S3 credentials: no static keys and no workload identity found by the SDK's chain",
      { cause: e },
    );
  }
  if (/region is missing/i.test(err instanceof Error ? err.message : "")) {
    return new StorageError("InvalidConfiguration", "S3 region is not configured", { cause: e });
  }
  if (UNREACHABLE.has(code) || UNREACHABLE.has(name) || status === 503) {
    return new StorageError("Unreachable", `S3 endpoint is unreachable: ${code || detail}`, {
      cause: e,
    });
  }
  return new StorageError("StorageError", `S3 request failed: ${detail}`, { cause: e });
}
