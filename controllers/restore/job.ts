/**
 * One restore run, owned by the JobRunner: wait for a slot, check that the dump may be used at
 * all, restore it into a scratch database, swap that in, then re-apply grants.
 *
 * The order is what makes a restore safe for everyone else on the server:
 * 1. The manifest is read and checked (trust.ts: the operator's signature, the source namespace)
 *    before anything touches PostgreSQL. A refused dump changes nothing.
 * 2. Whatever an earlier attempt left (scratch database, login role, borrowed memberships, a
 *    target that refuses connections) is removed; if that attempt already swapped, the restore
 *    only finishes (grants, status).
 * 3. onConflict fail: the target must hold nothing (checked again just before the swap).
 * 4. The dump goes into the scratch database (restore_target.ts), as a temporary login role that
 *    can act only as the Database's owner role, psql in restricted mode (backup/restrict.ts).
 *    Only when the tool succeeded and the stored object matched its manifest is it swapped in,
 *    by renaming in one transaction; the old database is dropped after the Restore is Completed.
 *    Any failure leaves the target as it was and drops the scratch database.
 *
 * Ownership and grants after a restore: the dump carries no owners or privileges (--no-owner
 * --no-privileges), and the session acts as the Database's owner role (`-c role=<owner>`), so
 * every restored object belongs to `<db>_owner`, like objects its users create.
 * `ensureDatabase` grants the Database's group roles on them, and the Database and every
 * DatabaseUser of it are annotated (`dbtether.io/restored-at`) so their controllers re-converge
 * (the swapped-in database is a new database: per-database role settings start empty).
 */
import type { Database } from "../../crds/database.ts";
import { DatabaseKind } from "../../crds/database.ts";
import { type DatabaseUser, DatabaseUserKind } from "../../crds/database_user.ts";
import type { KubeObject } from "../../crds/kind.ts";
import { type Restore, RestoreKind } from "../../crds/restore.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import { RestoreError } from "../../backup/errors.ts";
import { type BackupManifest, verifyManifest } from "../../backup/manifest.ts";
import { parseServerVersionNum } from "../../backup/pg_tools.ts";
import { readRestoreManifest, runRestore } from "../../backup/restore.ts";
import type { ObjectStore } from "../../storage/store.ts";
import { StorageError } from "../../storage/store.ts";
import type { ResolvedCluster } from "../services/resolver.ts";
import { namespaceGranted, needsLabels } from "../services/namespaces.ts";
import { PgExecutor } from "../postgres/execute.ts";
import { databaseRoles } from "../postgres/names.ts";
import type { DatabaseSpec } from "../postgres/plan.ts";
import {
  notEmpty,
  type RestorePlacement,
  restorePlacement,
  RestoreTargetExecutor,
} from "../postgres/restore_target.ts";
import { generatePassword, scramVerifier } from "../postgres/scram.ts";
import { errorMessage, RetryableError, TerminalError } from "../../lib/errors.ts";
import { MERGE_PATCH, NamespaceResource } from "../runtime/kube.ts";
import type { Logger } from "../../lib/log.ts";
import { updateStatus } from "../runtime/objects.ts";
import { kubeTime } from "../../lib/time.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import { openStore } from "../services/storage_access.ts";
import { openJobConnection } from "../services/job_connection.ts";
import { JobStopped } from "../services/job_runner.ts";
import { acquireSlot, type BackupShared } from "../services/backup_shared.ts";
import type { RestoreTarget } from "./plan.ts";
import {
  completedRestoreStatus,
  failedRestoreStatus,
  pendingRestoreStatus,
  type RestoreReason,
  runningRestoreStatus,
} from "./status.ts";
import { checkTrust } from "./trust.ts";

export const RESTORED_AT_ANNOTATION = "dbtether.io/restored-at";
const FORCE_ADOPT_ANNOTATION = "dbtether.io/force-adopt";

export interface RestoreJob {
  restore: Restore;
  target: RestoreTarget;
  database: Database;
  storage: BackupStorage;
  cluster: ResolvedCluster;
  toolDirs: string[] | undefined;
  env: Record<string, string | undefined>;
}

class StepError extends Error {
  constructor(readonly reason: RestoreReason, message: string) {
    super(message);
  }
}

/** The postgres module's view of a Database resource. */
export function databaseSpecOf(db: Database): DatabaseSpec {
  return {
    database: db.status!.databaseName!,
    marker: { namespace: db.metadata.namespace ?? "", name: db.metadata.name },
    revokePublicConnect: db.spec.revokePublicConnect ?? true,
    forceAdopt: db.metadata.annotations?.[FORCE_ADOPT_ANNOTATION] === "true",
  };
}

/** The role restored objects belong to: the one the Database reports, else its derived name. */
export function ownerRole(db: Database): string {
  return db.status?.ownerRole ?? databaseRoles(db.status!.databaseName!).owner;
}

/**
 * The server names of a Restore (scratch database, login role, ...). From status when the
 * target Database is gone (cleanup), so only `databaseName` is needed.
 */
export function placementOf(
  r: Restore,
  o: { databaseName: string; database?: Database | undefined },
): RestorePlacement {
  const ns = r.metadata.namespace ?? "";
  return restorePlacement({
    target: o.databaseName,
    owner: o.database?.status?.ownerRole ?? databaseRoles(o.databaseName).owner,
    restore: { namespace: ns, name: r.metadata.name, uid: r.metadata.uid ?? "" },
    database: { namespace: ns, name: r.spec.target.databaseRef.name },
  });
}

export async function runRestoreJob(
  deps: ControllerDeps,
  shared: BackupShared,
  job: RestoreJob,
  signal: AbortSignal,
): Promise<void> {
  const r = job.restore;
  const log = deps.logger.with({
    restore: `${r.metadata.namespace}/${r.metadata.name}`,
    key: job.target.source.path,
  });
  const now = () => deps.clock.now();
  let lease;
  try {
    lease = await acquireSlot(shared.limiter, {
      id: `restore/${r.metadata.namespace}/${r.metadata.name}`,
      cluster: job.target.clusterName,
      signal,
      clock: deps.clock,
      onWaiting: async (position) => {
        await updateStatus(deps.client, {
          resource: RestoreKind,
          object: r,
          compute: (l) =>
            pendingRestoreStatus(l, {
              reason: "WaitingForSlot",
              message: `Waiting for a backup slot (position ${position} in queue)`,
              now: now(),
            }),
        });
      },
    });
  } catch (e) {
    await stopped(deps, shared, job, signal, e, log);
    return;
  }
  try {
    const latest = await deps.client.find<Restore>(RestoreKind, {
      namespace: r.metadata.namespace,
      name: r.metadata.name,
    });
    if (!latest || latest.metadata.uid !== r.metadata.uid) return;
    if (latest.status?.phase === "Completed" || latest.status?.phase === "Failed") return;
    await updateStatus(deps.client, {
      resource: RestoreKind,
      object: latest,
      compute: (l) =>
        runningRestoreStatus(l, {
          attempt: job.target.attempt,
          source: job.target.source,
          clusterName: job.target.clusterName,
          databaseName: job.target.databaseName,
          now: now(),
        }),
    });
    deps.recorder.emit(
      latest,
      "Normal",
      "Started",
      `Restoring ${job.target.source.path} into database "${job.target.databaseName}"`,
    );
    try {
      await restoreAndSwap(deps, shared, { ...job, restore: latest }, signal, log);
    } catch (e) {
      await stopped(deps, shared, { ...job, restore: latest }, signal, e, log);
    }
  } finally {
    lease.release();
  }
}

interface Outcome {
  sha256: string;
  storedBytes: number;
  durationMs: number;
}

async function restoreAndSwap(
  deps: ControllerDeps,
  shared: BackupShared,
  job: RestoreJob,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  const executor = new PgExecutor(job.cluster.pool, { logger: log, signal });
  const steps = new RestoreTargetExecutor(executor, { logger: log });
  const place = placementOf(job.restore, {
    databaseName: job.target.databaseName,
    database: job.database,
  });
  let store: ObjectStore | undefined;
  let outcome: Outcome;
  try {
    store = await openStore(deps.client, job.storage, { env: job.env, logger: log });
    const manifest = (await readRestoreManifest(store, job.target.source.path, { signal }))!;
    await checkManifest(deps, shared, job, manifest);
    if (await steps.swapped(place)) {
      log.info("An earlier attempt swapped the restored database in; finishing it");
      outcome = { sha256: manifest.sha256, storedBytes: manifest.compressedSize, durationMs: 0 };
    } else {
      await steps.cleanup(place);
      if (job.restore.spec.onConflict !== "drop") {
        const n = await steps.targetObjects(place);
        if (n > 0) throw notEmpty(place.target, n);
      }
      outcome = await restoreIntoScratch(deps, job, { store, manifest, steps, place, signal, log });
    }
  } finally {
    await store?.close().catch(() => {});
  }
  await finish(deps, shared, job, { executor, steps, place, outcome, log });
}

async function restoreIntoScratch(
  deps: ControllerDeps,
  job: RestoreJob,
  o: {
    store: ObjectStore;
    manifest: BackupManifest;
    steps: RestoreTargetExecutor;
    place: RestorePlacement;
    signal: AbortSignal;
    log: Logger;
  },
): Promise<Outcome> {
  const { target } = job;
  // The login role's password lives only in this process and in psql's environment.
  const password = generatePassword(32);
  try {
    await o.steps.prepare(o.place, { verifier: await scramVerifier(password) });
    const versionNum = job.cluster.cluster.status?.versionNum;
    let result;
    {
      await using conn = await openJobConnection(job.cluster.server, o.place.scratch);
      result = await runRestore({
        store: o.store,
        key: target.source.path,
        manifest: o.manifest,
        connection: {
          ...conn.connection,
          user: o.place.loginRole,
          password,
          role: o.place.owner,
        },
        signal: o.signal,
        logger: o.log,
        clock: deps.clock,
        ...(target.source.format ? { format: target.source.format } : {}),
        ...(job.toolDirs ? { toolDirs: job.toolDirs } : {}),
        ...(versionNum ? { serverVersion: parseServerVersionNum(versionNum) } : {}),
      });
    }
    await o.steps.releaseLoginRole(o.place);
    await o.steps.swap(o.place, { requireEmpty: job.restore.spec.onConflict !== "drop" });
    return result;
  } catch (e) {
    // On shutdown the next attempt cleans up (no SQL after the signal); on deletion the
    // reconcile does, once this job ended.
    if (!o.signal.aborted) {
      await o.steps.cleanup(o.place).catch((err) =>
        o.log.warn("Cannot clean up after the failed restore; the next reconcile retries", {
          error: errorMessage(err),
        })
      );
    }
    throw e;
  }
}

/** Refuses a dump this Restore may not use (trust.ts), before anything touches PostgreSQL. */
async function checkManifest(
  deps: ControllerDeps,
  shared: BackupShared,
  job: RestoreJob,
  manifest: BackupManifest,
): Promise<void> {
  const ns = job.restore.metadata.namespace ?? "";
  const restores = job.storage.spec.restores;
  let keys;
  try {
    keys = await shared.keyring.verifyingKeys();
  } catch (e) {
    throw new StepError("RestoreFailed", errorMessage(e));
  }
  const grant = restores?.crossNamespace;
  let labels: Record<string, string> = {};
  if (needsLabels(grant)) {
    const n = await deps.client.find<KubeObject<unknown, unknown>>(NamespaceResource, { name: ns });
    labels = n?.metadata.labels ?? {};
  }
  const decision = checkTrust({
    manifest,
    verdict: verifyManifest(manifest, keys),
    key: job.target.source.path,
    storage: job.storage.metadata.name,
    keyring: shared.keyring.describe(),
    namespace: ns,
    allowUnsigned: restores?.allowUnsigned ?? false,
    crossNamespace: namespaceGranted(grant, ns, labels),
  });
  if (!decision.ok) throw new StepError(decision.reason, decision.message);
}

async function finish(
  deps: ControllerDeps,
  shared: BackupShared,
  job: RestoreJob,
  o: {
    executor: PgExecutor;
    steps: RestoreTargetExecutor;
    place: RestorePlacement;
    outcome: Outcome;
    log: Logger;
  },
): Promise<void> {
  const { target } = job;
  try {
    await o.executor.ensureDatabase(databaseSpecOf(job.database));
  } catch (e) {
    throw new StepError(
      "GrantsFailed",
      `Restored, but cannot re-apply the grants of Database "${job.database.metadata.name}": ` +
        errorMessage(e),
    );
  }
  await touchDependents(deps, job.database, o.log);
  // The old database goes before Completed is written, so Completed means it is gone; if the
  // drop fails, the reconcile's cleanup drops it later.
  await o.steps.dropReplaced(o.place).catch((e) =>
    o.log.warn("Cannot drop the replaced database yet", { error: errorMessage(e) })
  );
  const now = deps.clock.now();
  await updateStatus(deps.client, {
    resource: RestoreKind,
    object: job.restore,
    compute: (l) =>
      completedRestoreStatus(l, {
        sha256: o.outcome.sha256,
        bytesRead: o.outcome.storedBytes,
        durationMs: o.outcome.durationMs,
        database: target.databaseName,
        now,
      }),
  });
  shared.metrics.restores.inc({ result: "Completed" });
  shared.metrics.restoreDuration.observe(o.outcome.durationMs / 1000);
  deps.recorder.emit(
    job.restore,
    "Normal",
    "Completed",
    `Restored ${target.source.path} into database "${target.databaseName}" ` +
      `(${o.outcome.storedBytes} bytes in ${o.outcome.durationMs} ms)`,
  );
}

/**
 * Annotates the Database and its DatabaseUsers so their controllers re-apply extensions,
 * memberships, role settings and per-user grants on the swapped-in database.
 */
async function touchDependents(deps: ControllerDeps, db: Database, log: Logger): Promise<void> {
  const ns = db.metadata.namespace ?? "";
  const refers = (ref: { name: string; namespace?: string | undefined } | undefined, own: string) =>
    ref !== undefined && ref.name === db.metadata.name && (ref.namespace ?? own) === ns;
  const at = kubeTime(deps.clock.now());
  const annotate = { metadata: { annotations: { [RESTORED_AT_ANNOTATION]: at } } };
  try {
    await deps.client.patch(DatabaseKind, {
      namespace: ns,
      name: db.metadata.name,
      body: annotate,
      contentType: MERGE_PATCH,
    });
    const users = await deps.client.list<DatabaseUser>(DatabaseUserKind, {});
    for (const u of users.items) {
      const own = u.metadata.namespace ?? "";
      const s = u.spec;
      if (
        !refers(s.databaseRef, own) && !refers(s.database, own) &&
        !(s.databases ?? []).some((d) => refers(d, own))
      ) continue;
      await deps.client.patch(DatabaseUserKind, {
        namespace: own,
        name: u.metadata.name,
        body: annotate,
        contentType: MERGE_PATCH,
      });
    }
  } catch (e) {
    log.warn("Cannot re-enqueue the users of the restored database", { error: errorMessage(e) });
  }
}

async function stopped(
  deps: ControllerDeps,
  shared: BackupShared,
  job: RestoreJob,
  signal: AbortSignal,
  e: unknown,
  log: Logger,
): Promise<void> {
  const r = job.restore;
  const now = deps.clock.now();
  const why = signal.aborted && signal.reason instanceof JobStopped ? signal.reason : undefined;
  if (why?.why === "deleted") return;
  if (why?.why === "shutdown") {
    log.info("Restore interrupted by shutdown; the next leader retries it");
    await updateStatus(deps.client, {
      resource: RestoreKind,
      object: r,
      compute: (l) =>
        l.status?.phase === "Completed" || l.status?.phase === "Failed"
          ? undefined
          : pendingRestoreStatus(l, {
            reason: "Interrupted",
            message: `Interrupted: ${why.message}; will be retried`,
            now,
          }),
    }).catch(() => {});
    return;
  }
  const { reason, message } = restoreFailure(e);
  if (reason === "ClusterNotReady") {
    // The server is unreachable: not the dump's fault; retry through the controller's backoff.
    await updateStatus(deps.client, {
      resource: RestoreKind,
      object: r,
      compute: (l) => pendingRestoreStatus(l, { reason, message, now }),
    }).catch(() => {});
    return;
  }
  log.warn("Restore failed", { reason, error: message });
  await updateStatus(deps.client, {
    resource: RestoreKind,
    object: r,
    compute: (l) =>
      l.status?.phase === "Completed"
        ? undefined
        : failedRestoreStatus(l, { reason, message, now }),
  });
  shared.metrics.restores.inc({ result: reason });
  deps.recorder.emit(r, "Warning", "Failed", message);
}

/** The target refusals restore_target.ts throws as TerminalErrors. */
const TARGET_REASONS = new Set<string>([
  "TargetNotEmpty",
  "TargetNotFound",
  "ScratchDatabaseTaken",
]);

function restoreFailure(e: unknown): { reason: RestoreReason; message: string } {
  if (e instanceof StepError) return { reason: e.reason, message: e.message };
  if (e instanceof RestoreError) return { reason: e.reason, message: e.message };
  if (e instanceof StorageError) {
    return { reason: "StorageFailed", message: `Cannot use the backup storage: ${e.message}` };
  }
  if (e instanceof TerminalError) {
    const reason = TARGET_REASONS.has(e.reason) ? e.reason as RestoreReason : "RestoreFailed";
    return { reason, message: e.message };
  }
  if (e instanceof RetryableError && e.reason === "ClusterUnreachable") {
    return { reason: "ClusterNotReady", message: e.message };
  }
  return { reason: "RestoreFailed", message: `Restore failed: ${errorMessage(e)}` };
}
