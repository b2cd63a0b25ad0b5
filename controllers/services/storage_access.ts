/**
 * Opening the ObjectStore of a BackupStorage: its location, its static credentials from the
 * referenced Secret (never logged), and the namespace allow-list. Used by the BackupStorage,
 * Backup and Restore controllers alike, so credentials are read in one place.
 */
import type {
  BackupStorage,
  BackupStorageSpec,
  StorageProvider,
} from "../../crds/backup_storage.ts";
import type { KubeObject } from "../../crds/kind.ts";
import { createStore } from "../../storage/factory.ts";
import { storageSubject } from "../../storage/errors.ts";
import { nameFailures } from "../../storage/named.ts";
import {
  type ObjectStore,
  type StaticCredentials,
  StorageError,
  type StorageLocation,
} from "../../storage/store.ts";
import { namespaceAllowed, needsLabels } from "./namespaces.ts";
import { secretData } from "./resolver.ts";
import { RetryableError } from "../../lib/errors.ts";
import { type KubeClient, NamespaceResource, SecretResource } from "../runtime/kube.ts";
import type { Logger } from "../../lib/log.ts";

type Secret = KubeObject<unknown, unknown> & { data?: Record<string, string> };

/** Pure: the StorageLocation of a spec (exactly one provider set, checked at admission). */
export function storageLocation(spec: BackupStorageSpec): StorageLocation {
  const loc: StorageLocation = {};
  if (spec.s3) loc.s3 = { ...spec.s3 };
  if (spec.gcs) loc.gcs = { ...spec.gcs };
  if (spec.azure) loc.azure = { ...spec.azure };
  if (spec.local) loc.local = { ...spec.local };
  return loc;
}

/** Pure: the provider a spec configures, or undefined when none or several are set. */
export function storageProvider(spec: BackupStorageSpec): StorageProvider | undefined {
  const set = (["s3", "gcs", "azure", "local"] as const).filter((p) => spec[p] !== undefined);
  return set.length === 1 ? set[0] : undefined;
}

/** The static credentials of a BackupStorage, or undefined for workload identity. */
export async function storageCredentials(
  client: KubeClient,
  storage: BackupStorage,
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<StaticCredentials | undefined> {
  const ref = storage.spec.credentialsSecretRef;
  if (!ref) return undefined;
  const secret = await client.find<Secret>(SecretResource, {
    namespace: ref.namespace,
    name: ref.name,
    signal: opts.signal,
  });
  if (!secret) {
    throw new StorageError(
      "CredentialsMissing",
      `Cannot read the credentials of BackupStorage "${storage.metadata.name}": ` +
        `Secret ${ref.namespace}/${ref.name} does not exist`,
    );
  }
  const data = secretData(secret);
  if (Object.keys(data).length === 0) {
    throw new StorageError(
      "CredentialsMissing",
      `Cannot read the credentials of BackupStorage "${storage.metadata.name}": ` +
        `Secret ${ref.namespace}/${ref.name} is empty`,
    );
  }
  return data;
}

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** Workload-identity environment handed to the SDKs (the operator's environment). */
  env?: Record<string, string | undefined>;
  logger?: Logger;
  /** Cancels the read of the credentials Secret. */
  signal?: AbortSignal | undefined;
}

/**
 * Opens the store of a BackupStorage; the caller closes it. Throws StorageError, whose messages
 * name the BackupStorage and the operation (storage/named.ts).
 */
export async function openStore(
  client: KubeClient,
  storage: BackupStorage,
  opts: OpenStoreOptions = {},
): Promise<ObjectStore> {
  const credentials = await storageCredentials(client, storage, { signal: opts.signal });
  const store = createStore(storageLocation(storage.spec), {
    credentials,
    env: opts.env,
    logger: opts.logger,
  });
  // Every failure names this BackupStorage and what failed (upload, list, delete, head, ...).
  return nameFailures(store, storageSubject(storage.metadata));
}

/** Throws RetryableError NamespaceNotAllowed unless `namespace` may use the storage. */
export async function checkStorageNamespace(
  client: KubeClient,
  o: { storage: BackupStorage; namespace: string; signal?: AbortSignal },
): Promise<void> {
  const { storage, namespace } = o;
  const allowed = storage.spec.allowedNamespaces;
  let labels: Record<string, string> = {};
  if (needsLabels(allowed)) {
    const ns = await client.find<KubeObject<unknown, unknown>>(NamespaceResource, {
      name: namespace,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    labels = ns?.metadata.labels ?? {};
  }
  if (!namespaceAllowed(allowed, namespace, labels)) {
    throw new RetryableError(
      "NamespaceNotAllowed",
      `Namespace "${namespace}" may not use BackupStorage "${storage.metadata.name}": ` +
        "it is not in the BackupStorage's spec.allowedNamespaces",
    );
  }
}

/** Names of the BackupStorages whose credentials are the Secret `namespace/name`. */
export function storagesUsingSecret(
  storages: readonly BackupStorage[],
  namespace: string,
  name: string,
): string[] {
  return storages.filter((s) => {
    const ref = s.spec.credentialsSecretRef;
    return ref?.namespace === namespace && ref.name === name;
  }).map((s) => s.metadata.name);
}
