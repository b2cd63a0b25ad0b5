/**
 * BackupStorage controller: probes the location (reachable, writable) and reports Ready or a
 * precise reason. Re-probes periodically, on spec changes, and when its credentials Secret
 * changes.
 */
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import type { KubeObject } from "../../crds/kind.ts";
import type { ObjectStore } from "../../storage/store.ts";
import { StorageError } from "../../storage/store.ts";
import { type Controller, done, requeueAfter, type Result } from "../runtime/controller.ts";
import { errorMessage } from "../../lib/errors.ts";
import { objectKey } from "../runtime/informer.ts";
import { SecretResource } from "../runtime/kube.ts";
import { updateStatus } from "../runtime/objects.ts";
import { addController, type ControllerDeps } from "../runtime/shared.ts";
import { openStore, storageProvider, storagesUsingSecret } from "../services/storage_access.ts";
import {
  PROBE_INTERVAL_MS,
  PROBE_RETRY_MS,
  type ProbeOutcome,
  probeReason,
  storageStatus,
} from "./status.ts";

/** What the storage controllers need beyond the runtime (a subset of register's Services). */
export interface StorageServices {
  env: Record<string, string | undefined>;
}

const PROBE_TIMEOUT_MS = 30_000;

export function setupBackupStorageController(
  deps: ControllerDeps,
  services: StorageServices,
): Controller {
  const storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  const secrets = deps.informers.for<KubeObject<unknown, unknown>>(SecretResource, {
    metadataOnly: true,
  });
  const reconcile = async (key: string): Promise<Result> => {
    const obj = storages.get(key);
    if (!obj || obj.metadata.deletionTimestamp) return done;
    const provider = storageProvider(obj.spec);
    const outcome = await probe(deps, obj, services);
    const now = deps.clock.now();
    await updateStatus(deps.client, {
      resource: BackupStorageKind,
      object: obj,
      compute: (latest) => storageStatus(latest, outcome, { provider, now }),
    });
    if (!outcome.ok) {
      deps.logger.warn("Backup storage not usable", {
        storage: key,
        reason: outcome.reason,
        error: outcome.message,
      });
    }
    return requeueAfter(outcome.ok ? PROBE_INTERVAL_MS : PROBE_RETRY_MS);
  };
  const controller = addController(deps, "backupstorage", reconcile);
  controller.watch(storages);
  controller.watch(
    secrets,
    (s) => storagesUsingSecret(storages.list(), s.metadata.namespace ?? "", s.metadata.name),
  );
  return controller;
}

async function probe(
  deps: ControllerDeps,
  obj: BackupStorage,
  services: StorageServices,
): Promise<ProbeOutcome> {
  let store: ObjectStore | undefined;
  try {
    store = await openStore(deps.client, obj, {
      env: services.env,
      logger: deps.logger.with({ storage: objectKey(obj) }),
    });
    await withTimeout(store.probe(), PROBE_TIMEOUT_MS, obj.metadata.name);
    return { ok: true };
  } catch (e) {
    if (e instanceof StorageError) {
      return { ok: false, reason: probeReason(e.reason), message: e.message };
    }
    return {
      ok: false,
      reason: "StorageError",
      message: `Cannot probe BackupStorage "${obj.metadata.name}": ${errorMessage(e)}`,
    };
  } finally {
    await store?.close().catch(() => {});
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, name: string): Promise<T> {
  let cancel: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    cancel = setTimeout(() =>
      reject(
        new StorageError(
          "Unreachable",
          `Cannot probe BackupStorage "${name}": no answer within ${ms / 1000} s`,
        ),
      ), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(cancel));
}
