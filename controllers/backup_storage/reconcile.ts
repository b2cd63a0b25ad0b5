/**
 * BackupStorage controller: probes the location (reachable, writable) and reports Ready or a
 * precise reason. Re-probes periodically, on spec changes, when its credentials Secret changes,
 * and when a Backup's outcome contradicts its Ready condition (watches.ts).
 */
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import type { ObjectStore } from "../../storage/store.ts";
import { StorageError } from "../../storage/store.ts";
import type { Controller, ReconcileContext, Result } from "../runtime/controller.ts";
import { done, requeueAfter } from "../runtime/controller.ts";
import { errorMessage } from "../../lib/errors.ts";
import { updateStatus } from "../runtime/objects.ts";
import { type Reconciler, startController } from "../runtime/reconciler.ts";
import type { ControllerDeps, InformerSet } from "../runtime/shared.ts";
import { openStore, storageProvider } from "../services/storage_access.ts";
import {
  PROBE_INTERVAL_MS,
  PROBE_RETRY_MS,
  type ProbeOutcome,
  probeReason,
  storageStatus,
} from "./status.ts";
import { backupStorageWatches } from "./watches.ts";

/** What the storage controllers need beyond the runtime (a subset of register's Services). */
export interface StorageServices {
  env: Record<string, string | undefined>;
}

const PROBE_TIMEOUT_MS = 30_000;

/** Probes one BackupStorage and writes its status. */
export class BackupStorageReconciler implements Reconciler {
  readonly #deps: ControllerDeps;
  readonly #services: StorageServices;
  readonly #storages: InformerSet<BackupStorage>;

  constructor(deps: ControllerDeps, services: StorageServices) {
    this.#deps = deps;
    this.#services = services;
    this.#storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<Result> {
    const obj = this.#storages.get(key);
    if (!obj || obj.metadata.deletionTimestamp) return done;
    const provider = storageProvider(obj.spec);
    const outcome = await this.#probe(obj, ctx);
    const now = this.#deps.clock.now();
    await updateStatus(this.#deps.client, {
      resource: BackupStorageKind,
      object: obj,
      compute: (latest) => storageStatus(latest, outcome, { provider, now }),
      signal: ctx.signal,
    });
    if (!outcome.ok) {
      ctx.logger.warn("Backup storage not usable", {
        storage: key,
        reason: outcome.reason,
        error: outcome.message,
      });
    }
    return requeueAfter(outcome.ok ? PROBE_INTERVAL_MS : PROBE_RETRY_MS);
  }

  async #probe(obj: BackupStorage, ctx: ReconcileContext): Promise<ProbeOutcome> {
    let store: ObjectStore | undefined;
    // Bounded: a server that accepts the connection and never answers must not hold the
    // reconcile. The SDKs cancel their requests with the signal.
    const timeout = AbortSignal.timeout(PROBE_TIMEOUT_MS);
    const signal = AbortSignal.any([ctx.signal, timeout]);
    try {
      store = await openStore(this.#deps.client, obj, {
        env: this.#services.env,
        logger: ctx.logger,
        signal,
      });
      await store.probe({ signal });
      return { ok: true };
    } catch (e) {
      if (timeout.aborted && !ctx.signal.aborted) {
        const message = `Cannot probe BackupStorage "${obj.metadata.name}": no answer within ` +
          `${PROBE_TIMEOUT_MS / 1000} s`;
        return { ok: false, reason: probeReason("Unreachable"), message };
      }
      // Storage failures carry their own reasons (storage/store.ts), mapped to Ready reasons.
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
}

/** Starts the BackupStorage controller. */
export function setupBackupStorageController(
  deps: ControllerDeps,
  services: StorageServices,
): Controller {
  return startController(deps, {
    name: "backupstorage",
    reconciler: new BackupStorageReconciler(deps, services),
    watches: backupStorageWatches(deps),
  });
}
