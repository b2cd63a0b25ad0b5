/**
 * Builds the {@link ObjectStore} for a {@link StorageLocation}: the one place that knows which
 * backend serves which spec.
 */
import type { Logger } from "../lib/log.ts";
import { AzureStore } from "./azure.ts";
import { GcsStore } from "./gcs.ts";
import { LocalStore } from "./local.ts";
import { S3Store } from "./s3.ts";
import {
  type ObjectStore,
  type StaticCredentials,
  StorageError,
  type StorageLocation,
} from "./store.ts";

/** Options of {@link createStore}. */
export interface CreateStoreOptions {
  /** Static credentials from a Secret; absent means the cloud's workload identity. */
  credentials?: StaticCredentials | undefined;
  logger?: Logger | undefined;
  /**
   * Workload-identity settings handed to the SDK explicitly (the composition root passes the
   * process environment, tests pass their own). Absent: each SDK's default chain reads the
   * process environment itself. Recognised: AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN,
   * AWS_ROLE_SESSION_NAME, AWS_ENDPOINT_URL_STS, AWS_REGION; GOOGLE_APPLICATION_CREDENTIALS,
   * GOOGLE_CLOUD_PROJECT; AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID,
   * AZURE_AUTHORITY_HOST.
   */
  env?: Record<string, string | undefined> | undefined;
  /** Tuning; the defaults bound memory to a few tens of MiB per upload. */
  s3?: { partSize?: number; queueSize?: number };
  gcs?: { chunkSize?: number };
  azure?: { blockSize?: number; concurrency?: number };
}

/** The provider a location selects; throws InvalidConfiguration unless exactly one is set. */
export function locationProvider(location: StorageLocation): "s3" | "gcs" | "azure" | "local" {
  const set = (["s3", "gcs", "azure", "local"] as const).filter((p) => location[p] !== undefined);
  if (set.length !== 1) {
    throw new StorageError(
      "InvalidConfiguration",
      `Storage location must set exactly one of s3, gcs, azure, local: found ${
        set.length ? set.join(", ") : "none"
      }`,
    );
  }
  return set[0]!;
}

/** Creates the store for `location`. The caller owns it and must `close()` it. */
export function createStore(location: StorageLocation, opts: CreateStoreOptions = {}): ObjectStore {
  const common = { credentials: opts.credentials, env: opts.env, logger: opts.logger };
  switch (locationProvider(location)) {
    case "s3": {
      const s3 = location.s3!;
      requireName(s3.bucket, "S3 bucket");
      return new S3Store({ ...s3, ...common, ...opts.s3 });
    }
    case "gcs": {
      const gcs = location.gcs!;
      requireName(gcs.bucket, "GCS bucket");
      return new GcsStore({ ...gcs, ...common, ...opts.gcs });
    }
    case "azure": {
      const az = location.azure!;
      requireName(az.storageAccount, "Azure storage account");
      requireName(az.container, "Azure container");
      return new AzureStore({ ...az, ...common, ...opts.azure });
    }
    case "local":
      return new LocalStore({ path: location.local!.path });
  }
}

function requireName(value: string, what: string): void {
  if (!value) throw new StorageError("InvalidConfiguration", `${what} name is empty`);
}
