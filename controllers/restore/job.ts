/**
 * One restore run, owned by the JobRunner: wait for a slot, prepare the target (empty check,
 * or drop and recreate it through the postgres executor so ownership and grants are the
 * Database's), run the engine, then re-apply grants.
 *
 * Ownership and grants after a restore: the dump carries no owners or privileges (--no-owner
 * --no-privileges), and psql / pg_restore run as the Database's owner role (`SET ROLE` through
 * PGOPTIONS; the admin is a member of it), so every restored object belongs to `<db>_owner`,
 * like objects its users create, and admin-level users (members of the owner role) can ALTER
 * them. `ensureDatabase` grants the Database's group roles on them again, and every
 * DatabaseUser of the Database is annotated (`dbtether.io/restored-at`) so its controller
 * re-converges its memberships and per-user grants (a drop also recreated the group roles).
 */
import type { Database } from "../../crds/database.ts";
import { type DatabaseUser, DatabaseUserKind } from "../../crds/database_user.ts";
import { type Restore, RestoreKind } from "../../crds/restore.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import { RestoreError } from "../../backup/errors.ts";
import { parseServerVersionNum } from "../../backup/pg_tools.ts";
import { runRestore } from "../../backup/restore.ts";
import type { ObjectStore } from "../../storage/store.ts";
import { StorageError } from "../../storage/store.ts";
import type { ResolvedCluster } from "../dbcluster/resolver.ts";
import { observeDatabase } from "../postgres/catalog.ts";
import { PgExecutor } from "../postgres/execute.ts";
import { databaseRoles } from "../postgres/names.ts";
import type { DatabaseSpec } from "../postgres/plan.ts";
import { errorMessage, RetryableError, TerminalError } from "../runtime/errors.ts";
import { MERGE_PATCH } from "../runtime/kube.ts";
import type { Logger } from "../runtime/log.ts";
import { k8sTime, updateStatus } from "../runtime/objects.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import { openStore } from "../backup_storage/access.ts";
import { openJobConnection } from "../backup/connection.ts";
import { JobStopped } from "../backup/runner.ts";
import { acquireSlot, type BackupShared } from "../backup/shared.ts";
import type { RestoreTarget } from "./plan.ts";
import {
  completedRestoreStatus,
  failedRestoreStatus,
  pendingRestoreStatus,
  type RestoreReason,
  runningRestoreStatus,
} from "./status.ts";

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
        await updateStatus(deps.client, RestoreKind, r, (l) =>
          pendingRestoreStatus(l, {
            reason: "WaitingForSlot",
            message: `Waiting for a backup slot (position ${position} in queue)`,
            now: now(),
          }));
      },
    });
  } catch (e) {
    await stopped(deps, shared, job, signal, e, log);
    return;
  }
  try {
    const latest = await deps.client.find<Restore>(
      RestoreKind,
      r.metadata.namespace,
      r.metadata.name,
    );
    if (!latest || latest.metadata.uid !== r.metadata.uid) return;
    if (latest.status?.phase === "Completed" || latest.status?.phase === "Failed") return;
    await updateStatus(deps.client, RestoreKind, latest, (l) =>
      runningRestoreStatus(l, {
        attempt: job.target.attempt,
        source: job.target.source,
        now: now(),
      }));
    deps.recorder.emit(
      latest,
      "Normal",
      "Started",
      `Restoring ${job.target.source.path} into database "${job.target.databaseName}"`,
    );
    try {
      await restoreAndGrant(deps, shared, { ...job, restore: latest }, signal, log);
    } catch (e) {
      await stopped(deps, shared, { ...job, restore: latest }, signal, e, log);
    }
  } finally {
    lease.release();
  }
}

async function restoreAndGrant(
  deps: ControllerDeps,
  shared: BackupShared,
  job: RestoreJob,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  const { target } = job;
  const spec = databaseSpecOf(job.database);
  const executor = new PgExecutor(job.cluster.pool, { logger: log, signal });
  await prepareTarget(executor, job, spec);
  let store: ObjectStore | undefined;
  let result;
  try {
    store = await openStore(deps.client, job.storage, { env: job.env, logger: log });
    const versionNum = job.cluster.cluster.status?.versionNum;
    await using conn = await openJobConnection(job.cluster.server, target.databaseName);
    result = await runRestore({
      store,
      key: target.source.path,
      connection: { ...conn.connection, role: ownerRole(job.database) },
      signal,
      logger: log,
      clock: deps.clock,
      ...(target.source.format ? { format: target.source.format } : {}),
      ...(job.toolDirs ? { toolDirs: job.toolDirs } : {}),
      ...(versionNum ? { serverVersion: parseServerVersionNum(versionNum) } : {}),
    });
  } finally {
    await store?.close().catch(() => {});
  }
  try {
    await executor.ensureDatabase(spec);
  } catch (e) {
    throw new StepError(
      "GrantsFailed",
      `Restored, but cannot re-apply the grants of Database "${job.database.metadata.name}": ` +
        errorMessage(e),
    );
  }
  await touchUsers(deps, job.database, log);
  const now = deps.clock.now();
  await updateStatus(deps.client, RestoreKind, job.restore, (l) =>
    completedRestoreStatus(l, {
      sha256: result.sha256,
      bytesRead: result.storedBytes,
      durationMs: result.durationMs,
      database: target.databaseName,
      now,
    }));
  shared.metrics.restores.inc({ result: "Completed" });
  shared.metrics.restoreDuration.observe(result.durationMs / 1000);
  deps.recorder.emit(
    job.restore,
    "Normal",
    "Completed",
    `Restored ${target.source.path} into database "${target.databaseName}" ` +
      `(${result.storedBytes} bytes in ${result.durationMs} ms)`,
  );
}

/** The role restored objects belong to: the one the Database reports, else its derived name. */
export function ownerRole(db: Database): string {
  return db.status?.ownerRole ?? databaseRoles(db.status!.databaseName!).owner;
}

/** onConflict fail: the target must hold no relations; drop: recreate it empty. */
async function prepareTarget(executor: PgExecutor, job: RestoreJob, spec: DatabaseSpec) {
  if (job.restore.spec.onConflict === "drop") {
    await executor.dropDatabase({ database: spec.database, marker: spec.marker });
    await executor.ensureDatabase(spec);
    return;
  }
  const roles = databaseRoles(spec.database);
  const snap = await job.cluster.pool.run((sql) => observeDatabase(sql, roles), {
    database: spec.database,
  });
  if (snap.relations.length > 0) {
    throw new StepError(
      "TargetNotEmpty",
      `Cannot restore into database "${spec.database}": it is not empty (` +
        `${snap.relations.length} tables, views or sequences); use onConflict: drop to ` +
        `replace it`,
    );
  }
}

/** Annotates the DatabaseUsers of `db` so their controller re-applies their grants. */
async function touchUsers(deps: ControllerDeps, db: Database, log: Logger): Promise<void> {
  const ns = db.metadata.namespace ?? "";
  const refers = (ref: { name: string; namespace?: string | undefined } | undefined, own: string) =>
    ref !== undefined && ref.name === db.metadata.name && (ref.namespace ?? own) === ns;
  try {
    const users = await deps.client.list<DatabaseUser>(DatabaseUserKind, {});
    const at = k8sTime(deps.clock.now());
    for (const u of users.items) {
      const own = u.metadata.namespace ?? "";
      const s = u.spec;
      if (
        !refers(s.databaseRef, own) && !refers(s.database, own) &&
        !(s.databases ?? []).some((d) => refers(d, own))
      ) continue;
      await deps.client.patch(DatabaseUserKind, own, u.metadata.name, {
        metadata: { annotations: { [RESTORED_AT_ANNOTATION]: at } },
      }, { contentType: MERGE_PATCH });
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
    await updateStatus(
      deps.client,
      RestoreKind,
      r,
      (l) =>
        l.status?.phase === "Completed" || l.status?.phase === "Failed"
          ? undefined
          : pendingRestoreStatus(l, {
            reason: "Interrupted",
            message: `Interrupted: ${why.message}; will be retried`,
            now,
          }),
    ).catch(() => {});
    return;
  }
  const { reason, message } = restoreFailure(e);
  if (reason === "ClusterNotReady") {
    // The server is unreachable: not the dump's fault; retry through the controller's backoff.
    await updateStatus(
      deps.client,
      RestoreKind,
      r,
      (l) => pendingRestoreStatus(l, { reason, message, now }),
    ).catch(() => {});
    return;
  }
  log.warn("Restore failed", { reason, error: message });
  await updateStatus(
    deps.client,
    RestoreKind,
    r,
    (l) =>
      l.status?.phase === "Completed"
        ? undefined
        : failedRestoreStatus(l, { reason, message, now }),
  );
  shared.metrics.restores.inc({ result: reason });
  deps.recorder.emit(r, "Warning", "Failed", message);
}

function restoreFailure(e: unknown): { reason: RestoreReason; message: string } {
  if (e instanceof StepError) return { reason: e.reason, message: e.message };
  if (e instanceof RestoreError) return { reason: e.reason, message: e.message };
  if (e instanceof StorageError) {
    return { reason: "StorageFailed", message: `Cannot use the backup storage: ${e.message}` };
  }
  if (e instanceof TerminalError) return { reason: "RestoreFailed", message: e.message };
  if (e instanceof RetryableError && e.reason === "ClusterUnreachable") {
    return { reason: "ClusterNotReady", message: e.message };
  }
  return { reason: "RestoreFailed", message: `Restore failed: ${errorMessage(e)}` };
}
