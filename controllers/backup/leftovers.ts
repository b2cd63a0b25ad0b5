/**
 * What a Failed Backup's runs left at its key, removed once (plan.ts `removeLeftovers`). A
 * run that fails cleans up after itself, but not when the process died mid-upload (SIGKILL,
 * OOM), when the storage was gone at that moment, or when the dump completed just before a
 * kill and the Backup then gave up (RetriesExhausted): the object stays, counted by no
 * Completed Backup, so retention never removes it. Only this Backup's objects (by uid,
 * key_owner.ts) are deleted; another writer's are never touched, nor its uploads.
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import { manifestKey } from "../../backup/manifest.ts";
import type { Logger } from "../../lib/log.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import type { BackupShared } from "../services/backup_shared.ts";
import { classifyKey, observeKey } from "../services/key_owner.ts";
import { openStore } from "../services/storage_access.ts";
import { claimant, guardedStore } from "./job.ts";

/** What {@link removeLeftovers} needs. */
export interface LeftoverCleanup {
  backup: Backup;
  storage: BackupStorage;
  key: string;
  shared: BackupShared;
  env: Record<string, string | undefined>;
  stallTimeoutMs: number;
  signal: AbortSignal;
  log: Logger;
}

/**
 * Removes this Backup's objects at `key` (a partial or unrecorded dump, its manifest) and the
 * incomplete multipart uploads to both keys. Returns what it removed, for the Event; throws a
 * StorageError when the storage cannot be asked (the reconcile is retried with backoff).
 */
export async function removeLeftovers(deps: ControllerDeps, o: LeftoverCleanup): Promise<string[]> {
  const { key, signal } = o;
  const store = guardedStore(
    await openStore(deps.client, o.storage, { env: o.env, logger: o.log, signal }),
    {
      storageName: o.storage.metadata.name,
      stallTimeoutMs: o.stallTimeoutMs,
      shared: o.shared,
      clock: deps.clock,
    },
  );
  try {
    const state = classifyKey(await observeKey(store, key, { signal }), claimant(o.backup));
    // Another writer's key: its objects and any upload in flight there are its own.
    if (state.kind === "taken") return [];
    const removed: string[] = [];
    const manifest = state.kind === "complete" || (state.kind === "leftovers" && state.manifest);
    const dump = state.kind === "complete" || (state.kind === "leftovers" && state.dump);
    // The manifest first: a crash in between leaves a dump without manifest, still ours.
    if (manifest) {
      await store.delete(manifestKey(key), { signal });
      removed.push("its manifest");
    }
    if (dump) {
      await store.delete(key, { signal });
      removed.push(state.kind === "complete" ? "an unrecorded complete dump" : "a partial dump");
    }
    let uploads = 0;
    for (const k of [key, manifestKey(key)]) {
      uploads += await store.abortIncompleteUploads?.(k, { signal }) ?? 0;
    }
    if (uploads) removed.push(`${uploads} incomplete upload${uploads === 1 ? "" : "s"}`);
    return removed;
  } finally {
    await store.close().catch(() => {});
  }
}
