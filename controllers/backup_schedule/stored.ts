/**
 * Deleting the stored dump of a scheduled Backup, for retention. The Backup resource has no
 * deletion path of its own that touches storage (deleting a Backup keeps its dump), so
 * retention deletes the objects first and the resource after; a crash in between leaves a
 * Backup whose objects are gone, and the next run deletes it (deleting is idempotent).
 *
 * Only objects that prove they are this Backup's are deleted: the manifest names the Backup's
 * uid, or the dump's metadata does (key_owner.ts). Nothing is listed by prefix, so a sibling
 * prefix or another writer's object at the same key is never touched.
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import { manifestKey } from "../../backup/manifest.ts";
import { errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { ObjectStore } from "../../storage/store.ts";
import type { KubeClient } from "../runtime/kube.ts";
import { BACKUP_UID_METADATA, classifyKey, observeKey } from "../services/key_owner.ts";
import { checkStorageNamespace, openStore } from "../services/storage_access.ts";

export type StoredDeletion =
  | { kind: "deleted"; objects: number }
  /** Nothing at the key any more (deleted before, or never written). */
  | { kind: "absent" }
  | { kind: "refused"; message: string };

/** Deletes `b`'s dump and manifest from `store` if they are provably its own. */
export async function deleteStoredBackup(
  store: ObjectStore,
  b: Backup,
  opts: { signal?: AbortSignal } = {},
): Promise<StoredDeletion> {
  const key = b.status?.path;
  const uid = b.metadata.uid;
  if (!key || !uid) return { kind: "absent" };
  const obs = await observeKey(store, key, opts);
  const state = classifyKey(obs, {
    uid,
    namespace: b.metadata.namespace ?? "",
    name: b.metadata.name,
  });
  if (state.kind === "free") return { kind: "absent" };
  if (state.kind === "taken") return { kind: "refused", message: state.message };
  const manifestOurs = obs.manifest && "parsed" in obs.manifest &&
    obs.manifest.parsed.source?.backupUid === uid;
  const dumpOurs = obs.dump?.metadata[BACKUP_UID_METADATA] === uid;
  if (!manifestOurs && !dumpOurs) {
    return {
      kind: "refused",
      message: `The object at ${key} does not name Backup "${b.metadata.name}" as its writer: ` +
        "it is kept",
    };
  }
  let objects = 0;
  if (obs.dump) {
    await store.delete(key, opts);
    objects++;
  }
  if (obs.manifest) {
    await store.delete(manifestKey(key), opts);
    objects++;
  }
  return { kind: "deleted", objects };
}

/** Options of {@link deleteScheduledBackup}. */
export interface DeleteScheduledOptions {
  /** The Backup's BackupStorage, undefined when it does not exist. */
  storage: BackupStorage | undefined;
  env: Record<string, string | undefined>;
  logger?: Logger;
  signal?: AbortSignal;
}

/**
 * Deletes a Backup the way retention does: its stored objects (if provably its own), then the
 * resource (uid precondition). Returns why it was kept instead, or undefined when it is gone.
 */
export async function deleteScheduledBackup(
  client: KubeClient,
  b: Backup,
  o: DeleteScheduledOptions,
): Promise<string | undefined> {
  const signal = o.signal ? { signal: o.signal } : {};
  if (!o.storage) return `BackupStorage "${b.spec.storageRef.name}" does not exist`;
  try {
    await checkStorageNamespace(client, {
      storage: o.storage,
      namespace: b.metadata.namespace ?? "",
      ...signal,
    });
  } catch (e) {
    return errorMessage(e);
  }
  const store = await openStore(client, o.storage, {
    env: o.env,
    ...(o.logger ? { logger: o.logger } : {}),
    ...signal,
  });
  try {
    const r = await deleteStoredBackup(store, b, signal);
    if (r.kind === "refused") return r.message;
  } finally {
    await store.close();
  }
  await client.delete(BackupKind, {
    namespace: b.metadata.namespace,
    name: b.metadata.name,
    ...(b.metadata.uid ? { uid: b.metadata.uid } : {}),
    ...signal,
  });
  return undefined;
}
