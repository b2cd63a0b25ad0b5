/**
 * Amazon S3 and S3-compatible servers (MinIO, Ceph, R2, ...).
 *
 * Uploads are our own multipart loop on `@aws-sdk/client-s3` (s3_multipart.ts says why).
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
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import type { Logger } from "../lib/log.ts";
import { CloudStore, type CloudStoreOptions, type StoredObject } from "./cloud.ts";
import {
  guarded,
  storageErrorOf,
  type Subject,
  transportVerdict,
  unavailableDetail,
  unavailableStatus,
  unreachableCodes,
  type Verdict,
} from "./errors.ts";
import {
  abortUpload,
  MAX_PART,
  MIN_PART,
  type PartTuning,
  type S3Session,
  uploadObject,
} from "./s3_multipart.ts";
import {
  type CallOptions,
  type ObjectInfo,
  type PutOptions,
  type StaticCredentials,
  StorageError,
  type TrackedSource,
  validateKey,
} from "./store.ts";

const sdk = () => import("@aws-sdk/client-s3");

/**
 * Options of {@link S3Store}. An S3-compatible `endpoint` usually needs path-style addressing.
 * Without static keys the SDK's default chain is used (IRSA / EKS Pod Identity, ...); `env` holds
 * AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME, AWS_ENDPOINT_URL_STS,
 * AWS_REGION / AWS_DEFAULT_REGION.
 */
export interface S3StoreOptions extends CloudStoreOptions {
  bucket: string;
  region?: string | undefined;
  forcePathStyle?: boolean | undefined;
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
export class S3Store extends CloudStore {
  readonly provider = "s3" as const;
  readonly #client: Promise<S3Client>;
  readonly #bucket: string;
  readonly #logger: Logger | undefined;
  readonly #tuning: PartTuning;

  constructor(opts: S3StoreOptions) {
    super();
    this.#bucket = opts.bucket;
    this.#logger = opts.logger;
    this.#tuning = {
      partSize: Math.min(MAX_PART, Math.max(MIN_PART, opts.partSize ?? MIN_PART)),
      queueSize: Math.max(1, opts.queueSize ?? 2),
    };
    const config = clientConfig(opts);
    this.#client = sdk().then((m) => new m.S3Client(config));
    // A failed import surfaces in the first operation, not as an unhandled rejection.
    this.#client.catch(() => {});
  }

  protected async upload(key: string, source: TrackedSource, opts: PutOptions): Promise<void> {
    await uploadObject(await this.#session(), { key, source, opts, tuning: this.#tuning });
  }

  /**
   * Deletes the object at `key` if its ETag is still `etag` (S3 honours If-Match on
   * DeleteObject; servers that ignore it delete unconditionally, which no-overwrite makes safe
   * in all but a race with a delete and a new put in between).
   */
  protected async remove(key: string, etag: string): Promise<void> {
    const { m, client } = await this.#session();
    await client.send(
      new m.DeleteObjectCommand({ ...this.#at(key), ...(etag ? { IfMatch: etag } : {}) }),
    );
  }

  protected async stat(key: string, signal?: AbortSignal): Promise<StoredObject> {
    const { m, client } = await this.#session();
    const res = await client.send(new m.HeadObjectCommand(this.#at(key)), send(signal));
    return {
      key,
      size: res.ContentLength ?? 0,
      lastModified: res.LastModified ?? new Date(0),
      metadata: { ...res.Metadata },
      version: res.ETag ?? "",
    };
  }

  protected async download(key: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const { m, client } = await this.#session();
    const res = await client.send(new m.GetObjectCommand(this.#at(key)), send(signal));
    if (!res.Body) throw new StorageError("StorageError", "S3 returned an object without a body");
    return res.Body.transformToWebStream() as ReadableStream<Uint8Array>;
  }

  protected async listAll(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    const { m, client } = await this.#session();
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const res = await client.send(
        new m.ListObjectsV2Command({
          Bucket: this.#bucket,
          Prefix: prefix,
          ...(token ? { ContinuationToken: token } : {}),
        }),
        send(signal),
      );
      for (const o of res.Contents ?? []) {
        if (o.Key === undefined) continue;
        out.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) });
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  protected async deleteObject(key: string, signal?: AbortSignal): Promise<void> {
    const { m, client } = await this.#session();
    await client.send(new m.DeleteObjectCommand(this.#at(key)), send(signal));
  }

  protected async probeBucket(signal?: AbortSignal): Promise<void> {
    const { m, client } = await this.#session();
    const key = `.dbtether-probe/${crypto.randomUUID()}`;
    await client.send(new m.HeadBucketCommand({ Bucket: this.#bucket }), send(signal));
    await client.send(
      new m.PutObjectCommand({ ...this.#at(key), Body: new Uint8Array() }),
      send(signal),
    );
    // Not cancelled: once the probe object exists, removing it is what leaves no trace.
    await client.send(new m.DeleteObjectCommand(this.#at(key)));
  }

  protected mapError(e: unknown, what: Subject): StorageError {
    return mapS3Error(e, this.#bucket, what);
  }

  async abortIncompleteUploads(key: string, opts: CallOptions = {}): Promise<number> {
    validateKey(key);
    const { signal } = opts;
    return await guarded(
      async () => {
        const session = await this.#session();
        let aborted = 0;
        let keyMarker: string | undefined;
        let uploadIdMarker: string | undefined;
        do {
          const res = await session.client.send(
            new session.m.ListMultipartUploadsCommand({
              Bucket: this.#bucket,
              Prefix: key,
              ...(keyMarker ? { KeyMarker: keyMarker } : {}),
              ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
            }),
            send(signal),
          );
          for (const u of res.Uploads ?? []) {
            if (u.Key !== key || !u.UploadId) continue;
            await abortUpload(session, { key, uploadId: u.UploadId, throwOnError: true, signal });
            aborted++;
          }
          const more = res.IsTruncated === true;
          keyMarker = more ? res.NextKeyMarker : undefined;
          uploadIdMarker = more ? res.NextUploadIdMarker : undefined;
        } while (keyMarker);
        return aborted;
      },
      (e, what) => this.mapError(e, what),
      { signal },
    );
  }

  override async close(): Promise<void> {
    (await this.#client.catch(() => undefined))?.destroy();
  }

  #at(key: string): { Bucket: string; Key: string } {
    return { Bucket: this.#bucket, Key: key };
  }

  async #session(): Promise<S3Session> {
    const [m, client] = await Promise.all([sdk(), this.#client]);
    const map = (e: unknown, what: Subject) => this.mapError(e, what);
    return { m, client, bucket: this.#bucket, logger: this.#logger, map };
  }
}

/** The SDK's per-request options for `signal`. */
function send(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal ? { abortSignal: signal } : {};
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
const UNREACHABLE = unreachableCodes("TimeoutError", "RequestTimeout");
/** S3's names for "not now" (S3 itself, MinIO, and S3-compatible services). */
const UNAVAILABLE = new Set([
  "SlowDown",
  "ServiceUnavailable",
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequests",
  "XMinioServerNotInitialized",
]);

/** Maps an AWS SDK error to a StorageError whose message names no key and no secret. */
export function mapS3Error(e: unknown, bucket: string, what: Subject): StorageError {
  if (e instanceof StorageError) return e;
  return storageErrorOf(e, s3Verdict(e, what), { provider: "S3", noun: "bucket", name: bucket });
}

function s3Verdict(e: unknown, what: Subject): Verdict {
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
  const transport = transportVerdict(e, "S3");
  if (transport) return transport;
  // A conditional write refused (412), or racing another conditional write (409).
  if (
    name === "PreconditionFailed" || name === "ConditionalRequestConflict" || status === 412
  ) {
    return { reason: "AlreadyExists" };
  }
  if (name === "NoSuchBucket" || (what === "bucket" && (name === "NotFound" || status === 404))) {
    return { reason: "BucketNotFound" };
  }
  if (name === "NoSuchKey" || name === "NoSuchUpload" || name === "NotFound" || status === 404) {
    return { reason: "NotFound" };
  }
  if (ACCESS_DENIED.has(name) || status === 403) return { reason: "AccessDenied", detail };
  if (name === "CredentialsProviderError" || name === "CredentialsMissing") {
    return {
      reason: "CredentialsMissing",
      message:
        "No S3 credentials: no static keys and no workload identity found by the SDK's chain",
    };
  }
  if (/region is missing/i.test(err instanceof Error ? err.message : "")) {
    return { reason: "InvalidConfiguration", message: "S3 region is not configured" };
  }
  // The server answered that it cannot serve now: 503 ServiceUnavailable or SlowDown, or 429.
  if (unavailableStatus(status) || UNAVAILABLE.has(name)) {
    return { reason: "Unavailable", detail: unavailableDetail(status, name) };
  }
  if (UNREACHABLE.has(code) || UNREACHABLE.has(name)) {
    return { reason: "Unreachable", detail: code || detail };
  }
  return { reason: "StorageError", detail };
}
