/**
 * Azure Blob Storage through `@azure/storage-blob`, with block uploads.
 *
 * `uploadStream` stages blocks and commits the block list only after the whole stream was
 * read. Uncommitted blocks are invisible (and garbage-collected by the service after a week),
 * so a failed or aborted put leaves the blob at the key as it was. The commit carries
 * `If-None-Match: *`: a put never replaces a blob. When the signal fires while the commit
 * completes, the put deletes the blob it committed (no_overwrite.ts).
 *
 * Metadata keys: Azure requires C# identifiers (letters, digits, '_'; no leading digit) and
 * answers InvalidMetadata to anything else, while the portable keys of {@link PutOptions}
 * use '-' (`dbtether-format`). `put` stores each '-' as '_' and `head` maps every '_' back to
 * '-', so a key written with '-' reads back unchanged on every backend. A key written with '_'
 * on Azure reads back with '-': that is why portable keys use '-' only.
 *
 * The SDKs are imported on first use, so a process that never talks to Azure does not pay
 * their memory.
 */
import { Readable } from "node:stream";
import type { BlobServiceClient, ContainerClient } from "@azure/storage-blob";
import type { TokenCredential } from "@azure/identity";
import { CloudStore, type CloudStoreOptions, type StoredObject } from "./cloud.ts";
import {
  storageErrorOf,
  type Subject,
  transportVerdict,
  unavailableDetail,
  unavailableStatus,
  unreachableCodes,
  type Verdict,
} from "./errors.ts";
import {
  type ObjectInfo,
  type PutOptions,
  type StaticCredentials,
  StorageError,
  type TrackedSource,
  validateKey,
} from "./store.ts";

const MiB = 1024 * 1024;
/** Authority hosts of the public and sovereign clouds; instance discovery works for these. */
const KNOWN_AUTHORITIES = [
  "login.microsoftonline.com",
  "login.microsoftonline.us",
  "login.chinacloudapi.cn",
];

/**
 * Options of {@link AzureStore}. `endpoint` is the blob service URL (default
 * `https://<account>.blob.core.windows.net`); `credentials` an account key, a SAS token or a
 * connection string, absent meaning workload identity, whose `env` holds
 * AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_AUTHORITY_HOST.
 */
export interface AzureStoreOptions extends CloudStoreOptions {
  storageAccount: string;
  container: string;
  /** Block size; memory use is about blockSize × concurrency. Default 8 MiB. */
  blockSize?: number | undefined;
  /** Blocks staged concurrently. Default 4. */
  concurrency?: number | undefined;
}

/** An {@link ObjectStore} on one Azure Blob container. */
export class AzureStore extends CloudStore {
  readonly provider = "azure" as const;
  readonly #container: Promise<ContainerClient>;
  readonly #name: string;
  readonly #blockSize: number;
  readonly #concurrency: number;

  constructor(opts: AzureStoreOptions) {
    super();
    this.#name = opts.container;
    this.#blockSize = opts.blockSize ?? 8 * MiB;
    this.#concurrency = opts.concurrency ?? 4;
    const auth = authOf(opts.credentials);
    this.#container = serviceClient(opts, auth).then((c) => c.getContainerClient(opts.container));
    this.#container.catch(() => {});
  }

  override async put(
    key: string,
    body: ReadableStream<Uint8Array>,
    opts: PutOptions = {},
  ): Promise<{ size: number }> {
    // A bad metadata key fails before the stream is touched.
    validateKey(key);
    if (opts.metadata) toAzureMetadata(opts.metadata);
    return await super.put(key, body, opts);
  }

  protected async upload(key: string, source: TrackedSource, opts: PutOptions): Promise<void> {
    await (await this.#container).getBlockBlobClient(key).uploadStream(
      // deno-lint-ignore no-explicit-any
      Readable.fromWeb(source.stream as any),
      this.#blockSize,
      this.#concurrency,
      {
        ...send(opts.signal),
        ...(opts.contentType ? { blobHTTPHeaders: { blobContentType: opts.contentType } } : {}),
        ...(opts.metadata ? { metadata: toAzureMetadata(opts.metadata) } : {}),
        // Put Block List commits only while no blob is at the key.
        conditions: { ifNoneMatch: "*" },
      },
    );
  }

  /** Deletes the blob at `key` if its ETag is still `etag`. */
  protected async remove(key: string, etag: string): Promise<void> {
    const conditions = etag ? { conditions: { ifMatch: etag } } : {};
    await (await this.#container).getBlobClient(key).delete(conditions);
  }

  protected async stat(key: string, signal?: AbortSignal): Promise<StoredObject> {
    const p = await (await this.#container).getBlobClient(key).getProperties(send(signal));
    return {
      key,
      size: p.contentLength ?? 0,
      lastModified: p.lastModified ?? new Date(0),
      metadata: fromAzureMetadata(p.metadata ?? {}),
      version: p.etag ?? "",
    };
  }

  protected async download(key: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const blob = (await this.#container).getBlobClient(key);
    const res = await blob.download(0, undefined, send(signal));
    if (!res.readableStreamBody) {
      throw new StorageError("StorageError", "Azure returned a blob without a body");
    }
    return Readable.toWeb(res.readableStreamBody as Readable) as ReadableStream<Uint8Array>;
  }

  protected async listAll(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const options = { ...(prefix ? { prefix } : {}), ...send(signal) };
    for await (const b of (await this.#container).listBlobsFlat(options)) {
      out.push({
        key: b.name,
        size: b.properties.contentLength ?? 0,
        lastModified: b.properties.lastModified,
      });
    }
    return out;
  }

  protected async deleteObject(key: string, signal?: AbortSignal): Promise<void> {
    await (await this.#container).getBlobClient(key).deleteIfExists(send(signal));
  }

  protected async probeBucket(signal?: AbortSignal): Promise<void> {
    // Writing is the check, and it needs only Storage Blob Data Contributor on the container.
    const blob = (await this.#container).getBlockBlobClient(
      `.dbtether-probe/${crypto.randomUUID()}`,
    );
    await blob.upload(new Uint8Array(), 0, send(signal));
    // Not cancelled: once the probe blob exists, removing it is what leaves no trace.
    await blob.deleteIfExists();
  }

  protected mapError(e: unknown, what: Subject): StorageError {
    return mapAzureError(e, this.#name, what);
  }
}

/** The SDK's per-request options for `signal`. */
function send(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal ? { abortSignal: signal } : {};
}

const AZURE_METADATA_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Portable metadata keys → Azure's: '-' becomes '_' (Azure keys are C# identifiers). Throws
 * InvalidConfiguration for a key that is still not an identifier; the message names the key
 * (keys are ours, never secrets) but not the value.
 */
export function toAzureMetadata(metadata: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) {
    const mapped = key.replaceAll("-", "_");
    if (!AZURE_METADATA_KEY.test(mapped)) {
      throw new StorageError(
        "InvalidConfiguration",
        `Invalid metadata key "${key}": Azure accepts only letters, digits, '-' and '_', ` +
          `not starting with a digit`,
      );
    }
    out[mapped] = value;
  }
  return out;
}

/** Azure's metadata keys → portable ones: every '_' reads back as '-'. */
export function fromAzureMetadata(metadata: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) out[key.replaceAll("_", "-")] = value;
  return out;
}

/** Fewer, shorter retries than the SDK's default, so an outage is reported within seconds. */
const PIPELINE = { retryOptions: { maxTries: 3, retryDelayInMs: 500, maxRetryDelayInMs: 4_000 } };

type Auth =
  | { kind: "connectionString" | "accountKey" | "sasToken"; value: string }
  | { kind: "identity" };

/** Which credential the Secret holds; checked up front so a bad Secret fails at once. */
function authOf(c: StaticCredentials | undefined): Auth {
  if (!c) return { kind: "identity" };
  const pick = (...names: string[]) => names.map((n) => c[n]).find((v) => v);
  const connectionString = pick("connectionString", "AZURE_STORAGE_CONNECTION_STRING");
  if (connectionString) return { kind: "connectionString", value: connectionString };
  const key = pick("accountKey", "AZURE_STORAGE_KEY");
  if (key) return { kind: "accountKey", value: key };
  const sas = pick("sasToken", "AZURE_STORAGE_SAS_TOKEN");
  if (sas) return { kind: "sasToken", value: sas };
  throw new StorageError(
    "CredentialsMissing",
    "Azure credentials are incomplete: accountKey, sasToken or connectionString is required",
  );
}

async function serviceClient(opts: AzureStoreOptions, auth: Auth): Promise<BlobServiceClient> {
  const blob = await import("@azure/storage-blob");
  const url = (opts.endpoint ?? `https://${opts.storageAccount}.blob.core.windows.net`).replace(
    /\/+$/,
    "",
  );
  switch (auth.kind) {
    case "connectionString":
      return blob.BlobServiceClient.fromConnectionString(auth.value, PIPELINE);
    case "accountKey": {
      const credential = new blob.StorageSharedKeyCredential(opts.storageAccount, auth.value);
      return new blob.BlobServiceClient(url, credential, PIPELINE);
    }
    case "sasToken": {
      const sasUrl = `${url}?${auth.value.replace(/^\?/, "")}`;
      return new blob.BlobServiceClient(sasUrl, new blob.AnonymousCredential(), PIPELINE);
    }
    case "identity":
      return new blob.BlobServiceClient(url, await tokenCredential(opts.env), PIPELINE);
  }
}

/**
 * Workload identity: explicit settings build a WorkloadIdentityCredential; otherwise
 * DefaultAzureCredential reads the same variables (and more) from the process environment.
 */
async function tokenCredential(
  env: Record<string, string | undefined> | undefined,
): Promise<TokenCredential> {
  const identity = await import("@azure/identity");
  const file = env?.["AZURE_FEDERATED_TOKEN_FILE"];
  const clientId = env?.["AZURE_CLIENT_ID"];
  const tenantId = env?.["AZURE_TENANT_ID"];
  if (!env || !file || !clientId || !tenantId) return new identity.DefaultAzureCredential();
  const authorityHost = env["AZURE_AUTHORITY_HOST"];
  const custom = authorityHost !== undefined &&
    !KNOWN_AUTHORITIES.includes(new URL(authorityHost).hostname);
  return new identity.WorkloadIdentityCredential({
    tenantId,
    clientId,
    tokenFilePath: file,
    ...(authorityHost ? { authorityHost } : {}),
    // Instance discovery asks the public cloud about the authority; a private one is unknown.
    ...(custom ? { disableInstanceDiscovery: true } : {}),
  });
}

const UNREACHABLE = unreachableCodes("REQUEST_SEND_ERROR");

/** Maps an Azure SDK error to a StorageError whose message names no key and no secret. */
export function mapAzureError(e: unknown, container: string, what: Subject): StorageError {
  if (e instanceof StorageError) return e;
  const scope = { provider: "Azure", noun: "container", name: container } as const;
  return storageErrorOf(e, azureVerdict(e, what), scope);
}

function azureVerdict(e: unknown, what: Subject): Verdict {
  const err = (e ?? {}) as { name?: string; statusCode?: number; code?: string; message?: string };
  const status = err.statusCode;
  const code = err.code ?? "";
  const name = err.name ?? "Error";
  const transport = transportVerdict(e, "Azure");
  if (transport) return transport;
  if (code === "ContainerNotFound" || (what === "bucket" && status === 404)) {
    return { reason: "BucketNotFound" };
  }
  // A conditional write refused (If-None-Match: * on an existing blob), or a conditional delete
  // of a blob that changed since.
  if (code === "BlobAlreadyExists" || code === "ConditionNotMet" || status === 412) {
    return { reason: "AlreadyExists" };
  }
  if (code === "BlobNotFound" || status === 404) return { reason: "NotFound" };
  if (status === 401 || status === 403) {
    return { reason: "AccessDenied", detail: code || `HTTP ${status}` };
  }
  if (name === "CredentialUnavailableError" || name === "AggregateAuthenticationError") {
    return {
      reason: "CredentialsMissing",
      message: "No Azure credentials: no static key and no workload identity found",
    };
  }
  if (name === "AuthenticationError") {
    return {
      reason: "AccessDenied",
      message: "Azure authentication failed: token request rejected",
    };
  }
  // ServerBusy (503) or throttled (429, 503): the account answered that it cannot serve now.
  if (unavailableStatus(status) || code === "ServerBusy") {
    return { reason: "Unavailable", detail: unavailableDetail(status, code) };
  }
  if (UNREACHABLE.has(code)) return { reason: "Unreachable", detail: code };
  return { reason: "StorageError", detail: code || (status ? `HTTP ${status}` : name) };
}
