/**
 * The one interface every storage backend implements. Keys are '/'-separated paths without a
 * leading slash; a backend maps them onto its own namespace (bucket, container, directory).
 */

/** Why a storage operation failed, as a CamelCase reason for status conditions. */
export type StorageErrorReason =
  | "BucketNotFound"
  | "AccessDenied"
  | "CredentialsMissing"
  | "InvalidConfiguration"
  | "Unreachable"
  | "NotFound"
  | "Aborted"
  | "StorageError";

/** A storage failure; `message` never contains credentials. */
export class StorageError extends Error {
  override name = "StorageError";
  constructor(readonly reason: StorageErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

export interface PutOptions {
  /** Aborting removes whatever part of the object was written (no object, no upload left). */
  signal?: AbortSignal;
  contentType?: string;
  /** Small string metadata stored with the object (lower-case ASCII keys). */
  metadata?: Record<string, string>;
}

export interface ObjectStore {
  readonly provider: "s3" | "gcs" | "azure" | "local" | "memory";
  /**
   * Writes the stream to `key`. The object becomes visible at `key` only when the whole
   * stream was written; if the stream errors or the signal aborts, nothing is left behind.
   */
  put(key: string, body: ReadableStream<Uint8Array>, opts?: PutOptions): Promise<{ size: number }>;
  /** Reads an object; throws StorageError("NotFound") when it does not exist. */
  get(key: string, opts?: { signal?: AbortSignal }): Promise<ReadableStream<Uint8Array>>;
  /** Metadata of one object, or undefined when it does not exist. */
  head(key: string): Promise<(ObjectInfo & { metadata: Record<string, string> }) | undefined>;
  /** Every object whose key starts with `prefix` (a plain string prefix), sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Deletes an object; deleting a missing object succeeds. */
  delete(key: string): Promise<void>;
  /** Checks that the bucket/container exists and is writable; throws StorageError. */
  probe(): Promise<void>;
  /** Releases clients and sockets. */
  close(): Promise<void>;
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
