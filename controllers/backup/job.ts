/**
 * One backup run, started by the reconciler and owned by the JobRunner: wait for a slot,
 * record the attempt, run the engine, record the outcome. Status writes go through
 * updateStatus (409-safe); the engine's errors are already redacted.
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { BackupError } from "../../backup/errors.ts";
import { type BackupManifest, manifestKey, signManifest } from "../../backup/manifest.ts";
import { parseServerVersionNum } from "../../backup/pg_tools.ts";
import { defaultLevel } from "../../backup/compression.ts";
import { type BackupOptions, type DumpSnapshot, runBackup } from "../../backup/pipeline.ts";
import { summarizeCounts } from "../../backup/table_counts.ts";
import { openDumpSnapshot, type OpenSnapshot } from "../postgres/table_counts.ts";
import type { ServerConfig } from "../postgres/pool.ts";
import { errorMessage } from "../../lib/errors.ts";
import type { ObjectStore } from "../../storage/store.ts";
import { StorageError } from "../../storage/store.ts";
import { guardStalls, stallOf } from "../../storage/stall_guard.ts";
import { storageSubject } from "../../storage/errors.ts";
import { humanDuration } from "../../lib/format.ts";
import type { Logger } from "../../lib/log.ts";
import type { Clock } from "../../lib/clock.ts";
import { updateStatus } from "../runtime/objects.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import { openStore } from "../services/storage_access.ts";
import { openJobConnection } from "../services/job_connection.ts";
import {
  BACKUP_UID_METADATA,
  classifyKey,
  type KeyClaimant,
  observeKey,
  takenMessage,
} from "../services/key_owner.ts";
import type { BackupJob, RunningJob } from "./job_spec.ts";
import { BackupOutcomes, isTerminal, storageFailure } from "./outcome.ts";
import { acquireSlot, type BackupShared } from "../services/backup_shared.ts";
import { progressStatus, queuedStatus, runningStatus } from "./status.ts";

/** How often progress reaches the status while running. */
export const PROGRESS_INTERVAL_MS = 5000;

/** What {@link runBackupJob} runs with. */
export interface BackupJobRun {
  shared: BackupShared;
  job: BackupJob;
  /** The job's signal: aborted on shutdown or when the Backup is deleted. */
  signal: AbortSignal;
}

/**
 * Runs one backup. Reads and progress writes pass the job's signal; the writes that record how
 * the run ended (outcome.ts) do not, so an interruption is recorded after the abort.
 */
export async function runBackupJob(deps: ControllerDeps, run: BackupJobRun): Promise<void> {
  const { shared, job, signal } = run;
  const { backup: b, target } = job;
  const log = deps.logger.with({
    backup: `${b.metadata.namespace}/${b.metadata.name}`,
    key: target.key,
  });
  const write = (compute: (latest: Backup) => Backup["status"] | undefined) =>
    updateStatus(deps.client, { resource: BackupKind, object: b, compute, signal });
  const now = () => deps.clock.now();
  const outcomes = new BackupOutcomes(deps, shared);
  let lease;
  try {
    lease = await acquireSlot(shared.limiter, {
      id: `backup/${b.metadata.namespace}/${b.metadata.name}`,
      cluster: target.clusterName,
      storage: target.storageName,
      signal,
      clock: deps.clock,
      onWaiting: async (position, blockedBy) => {
        await write((l) => queuedStatus(l, { position, blockedBy, now: now() }));
      },
    });
  } catch (e) {
    await outcomes.stopped({ ...job, startedAt: now() }, { signal, error: e, log });
    return;
  }
  try {
    const running = await markRunning(deps, { job, signal });
    if (!running) return;
    await dumpAndRecord(deps, outcomes, running, {
      signal,
      log,
      sign: async (m) => signManifest(m, await shared.keyring.signingKey({ signal })),
    });
  } finally {
    lease.release();
  }
}

/** Records Running on the latest Backup; undefined when it went away or finished meanwhile. */
async function markRunning(
  deps: ControllerDeps,
  o: { job: BackupJob; signal: AbortSignal },
): Promise<RunningJob | undefined> {
  const { job, signal } = o;
  const { backup: b, target } = job;
  const latest = await deps.client.find<Backup>(BackupKind, {
    namespace: b.metadata.namespace,
    name: b.metadata.name,
    signal,
  });
  if (!latest || latest.metadata.uid !== b.metadata.uid || isTerminal(latest)) return undefined;
  const startedAt = deps.clock.now();
  await updateStatus(deps.client, {
    resource: BackupKind,
    object: latest,
    compute: (l) =>
      runningStatus(l, {
        ...target,
        attempt: target.attempt,
        format: b.spec.format ?? "plain",
        now: startedAt,
      }),
    signal,
  });
  deps.recorder.emit(
    latest,
    "Normal",
    "Started",
    `Backing up database "${target.databaseName}" to ${target.key}` +
      (target.attempt > 1 ? ` (attempt ${target.attempt})` : ""),
  );
  return { ...job, backup: latest, startedAt };
}

async function dumpAndRecord(
  deps: ControllerDeps,
  outcomes: BackupOutcomes,
  job: RunningJob,
  o: {
    signal: AbortSignal;
    log: Logger;
    /** Signs the manifest with the operator's key (controllers/services/signing.ts). */
    sign: (m: BackupManifest) => Promise<BackupManifest>;
  },
): Promise<void> {
  const { signal, log } = o;
  const { backup: b, target } = job;
  const me = claimant(b);
  let store: ObjectStore | undefined;
  const progress = new ProgressWriter(deps, { backup: b, signal });
  try {
    store = guardedStore(
      await openStore(deps.client, job.storage, { env: job.env, logger: log, signal }),
      {
        storageName: job.storage.metadata.name,
        stallTimeoutMs: job.stallTimeoutMs,
        shared: outcomes.shared,
        clock: deps.clock,
      },
    );
    if (await settleKey(outcomes, { job, store, me, log, signal })) return;
    await using conn = await openJobConnection(job.cluster.server, target.databaseName);
    await using snap = await exportSnapshot(job.cluster.server, {
      database: target.databaseName,
      log,
    });
    const result = await runBackup({
      ...engineOptions(job, me),
      connection: conn.connection,
      store,
      signal,
      logger: log,
      clock: deps.clock,
      onProgress: (p) => progress.push(p.compressedBytes, p.uncompressedBytes),
      signManifest: o.sign,
      ...(snap.snapshot ? { snapshot: snap.snapshot } : {}),
    });
    await progress.settle();
    await outcomes.succeed(b, result.manifest);
  } catch (e) {
    await progress.settle();
    // The SDK aborts its multipart upload on failure, but not when the server was gone at that
    // moment; try once more now (the next attempt also does, before it uploads).
    // Not after a stall: that would wait out another timeout with the slot held, and the next
    // attempt (or the cleanup of a Failed Backup) aborts them.
    if (store && storageFailure(e) && !stallOf(e) && !signal.aborted) {
      await store.abortIncompleteUploads?.(target.key, { signal }).catch(() => 0);
    }
    if (store && alreadyExists(e) && !signal.aborted) {
      const message = await takenMessageAt(store, { key: target.key, me, signal });
      await outcomes.fail(b, { reason: "ObjectExists", message, log });
      return;
    }
    await outcomes.stopped(job, { signal, error: e, log });
  } finally {
    await store?.close().catch(() => {});
  }
}

/**
 * The job's store, failing any call or upload that stalls for `--backup-stall-timeout` with
 * StorageStalled (storage/stall_guard.ts), counted per BackupStorage.
 */
export function guardedStore(
  store: ObjectStore,
  o: { storageName: string; stallTimeoutMs: number; shared: BackupShared; clock: Clock },
): ObjectStore {
  const name = o.storageName;
  return guardStalls(store, {
    timeoutMs: o.stallTimeoutMs,
    subject: storageSubject({ name }),
    hint: `--backup-stall-timeout ${humanDuration(o.stallTimeoutMs)}`,
    clock: o.clock,
    onStall: () => o.shared.metrics.stalls.inc({ storage: name }),
  });
}

/**
 * Looks at the key before dumping: records this Backup's own complete backup, fails when
 * another writer's objects are there, removes this Backup's own leftovers. Returns whether the
 * job is done.
 */
async function settleKey(
  outcomes: BackupOutcomes,
  o: { job: RunningJob; store: ObjectStore; me: KeyClaimant; log: Logger; signal: AbortSignal },
): Promise<boolean> {
  const { job, store, log, signal } = o;
  const key = job.target.key;
  const state = classifyKey(await observeKey(store, key, { signal }), o.me);
  switch (state.kind) {
    case "complete":
      // A previous run finished the dump and the manifest, then died before recording it.
      log.info("Backup found complete in storage after an interruption");
      await outcomes.succeed(job.backup, state.manifest);
      return true;
    case "taken":
      await outcomes.fail(job.backup, { reason: "ObjectExists", message: state.message, log });
      return true;
    case "leftovers":
      log.info("Removing what an interrupted run of this Backup left at its key", state);
      // The manifest first: a crash in between leaves a dump without manifest, still ours.
      if (state.manifest) await store.delete(manifestKey(key), { signal });
      if (state.dump) await store.delete(key, { signal });
      break;
    case "free":
      break;
  }
  if (job.target.retry || state.kind === "leftovers") {
    await store.abortIncompleteUploads?.(key);
    await store.abortIncompleteUploads?.(manifestKey(key));
  }
  return false;
}

/** The engine's options that follow from the job alone: what to dump, how, and who wrote it. */
function engineOptions(job: RunningJob, me: KeyClaimant) {
  const { backup: b, target } = job;
  const versionNum = job.cluster.cluster.status?.versionNum;
  return {
    key: target.key,
    format: b.spec.format ?? "plain",
    compression: b.spec.compression?.algorithm ?? "gzip",
    compressionLevel: b.spec.compression?.level ??
      defaultLevel(b.spec.compression?.algorithm ?? "gzip"),
    progressIntervalMs: PROGRESS_INTERVAL_MS,
    ...(job.toolDirs ? { toolDirs: job.toolDirs } : {}),
    ...(job.gzipWorkers !== undefined ? { gzipWorkers: job.gzipWorkers } : {}),
    ...(versionNum ? { serverVersion: parseServerVersionNum(versionNum) } : {}),
    metadata: {
      "dbtether-namespace": me.namespace,
      "dbtether-backup": me.name,
      [BACKUP_UID_METADATA]: me.uid,
    },
    source: {
      namespace: me.namespace,
      backup: me.name,
      backupUid: me.uid,
      databaseResource: b.spec.databaseRef.name,
      cluster: target.clusterName,
    },
  } satisfies Partial<BackupOptions>;
}

/**
 * The snapshot the dump runs in and is counted in. Without one (the export failed) the dump
 * runs as before, in its own snapshot, and the backup records no counts.
 */
async function exportSnapshot(
  server: ServerConfig,
  o: { database: string; log: Logger },
): Promise<AsyncDisposable & { snapshot?: DumpSnapshot }> {
  let open: OpenSnapshot;
  try {
    open = await openDumpSnapshot(server, { database: o.database, logger: o.log });
  } catch (e) {
    o.log.warn("Cannot export a snapshot; the backup records no counts", {
      error: errorMessage(e),
    });
    return { async [Symbol.asyncDispose]() {} };
  }
  return {
    snapshot: {
      id: open.id,
      counts: async () => {
        const list = await open.counts();
        return list && summarizeCounts(list);
      },
    },
    [Symbol.asyncDispose]: () => open[Symbol.asyncDispose](),
  };
}

export function claimant(b: Backup): KeyClaimant {
  return {
    uid: b.metadata.uid ?? "",
    namespace: b.metadata.namespace ?? "",
    name: b.metadata.name,
  };
}

/** Whether the storage refused a write because an object is at the key. */
function alreadyExists(e: unknown): boolean {
  const cause = e instanceof BackupError ? e.cause : e;
  return cause instanceof StorageError && cause.reason === "AlreadyExists";
}

/** After a refused write: why, naming the writer when the key shows it. */
async function takenMessageAt(
  store: ObjectStore,
  o: { key: string; me: KeyClaimant; signal: AbortSignal },
): Promise<string> {
  const { key, me, signal } = o;
  const state = await observeKey(store, key, { signal }).then(
    (obs) => classifyKey(obs, me),
    () => undefined,
  );
  return state?.kind === "taken" ? state.message : takenMessage(key, me, {});
}

/** Writes progress to status without overlapping writes; the latest value wins. */
class ProgressWriter {
  #inFlight: Promise<void> | undefined;
  #pending: { bytes: number; raw: number } | undefined;
  constructor(
    private readonly deps: ControllerDeps,
    private readonly o: { backup: Backup; signal: AbortSignal },
  ) {}

  push(bytes: number, raw: number): void {
    this.#pending = { bytes, raw };
    if (!this.#inFlight) this.#inFlight = this.#drain();
  }

  async #drain(): Promise<void> {
    while (this.#pending) {
      const p = this.#pending;
      this.#pending = undefined;
      await updateStatus(this.deps.client, {
        resource: BackupKind,
        object: this.o.backup,
        compute: (l) =>
          progressStatus(l, {
            bytes: p.bytes,
            uncompressedBytes: p.raw,
            now: this.deps.clock.now(),
          }),
        signal: this.o.signal,
      })
        .catch(() => {});
    }
    this.#inFlight = undefined;
  }

  /** Waits for the last progress write, so the final status is written after it. */
  async settle(): Promise<void> {
    this.#pending = undefined;
    await this.#inFlight;
  }
}
