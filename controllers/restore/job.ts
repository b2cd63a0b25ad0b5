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
import { type Restore, RestoreKind } from "../../crds/restore.ts";
import type { KubeObject } from "../runtime/types.ts";
import { type BackupManifest, verifyManifest } from "../../backup/manifest.ts";
import { parseServerVersionNum } from "../../backup/pg_tools.ts";
import { readRestoreManifest, runRestore } from "../../backup/restore.ts";
import type { ObjectStore } from "../../storage/store.ts";
import { namespaceGranted, needsLabels } from "../services/namespaces.ts";
import { PgExecutor } from "../postgres/execute.ts";
import {
  notEmpty,
  type RestorePlacement,
  RestoreTargetExecutor,
} from "../postgres/restore_target.ts";
import { generatePassword, scramVerifier } from "../postgres/scram.ts";
import { errorMessage } from "../../lib/errors.ts";
import { NamespaceResource } from "../runtime/kube.ts";
import type { Logger } from "../../lib/log.ts";
import { updateStatus } from "../runtime/objects.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import { openStore } from "../services/storage_access.ts";
import { openJobConnection } from "../services/job_connection.ts";
import { acquireSlot, type BackupShared } from "../services/backup_shared.ts";
import { StepError } from "./failure.ts";
import { databaseSpecOf, placementOf, type RestoreJob, type RestoreOutcome } from "./job_spec.ts";
import { RestoreOutcomes, touchDependents } from "./outcome.ts";
import { pendingRestoreStatus, runningRestoreStatus } from "./status.ts";
import { checkTrust } from "./trust.ts";

/** What {@link runRestoreJob} runs with. */
export interface RestoreJobRun {
  shared: BackupShared;
  job: RestoreJob;
  /** The job's signal: aborted on shutdown or when the Restore is deleted. */
  signal: AbortSignal;
}

/** What the steps of one run share. */
interface Step {
  deps: ControllerDeps;
  shared: BackupShared;
  outcomes: RestoreOutcomes;
  job: RestoreJob;
  signal: AbortSignal;
  log: Logger;
}

/** Runs one restore: slot, Running, restore and swap, outcome. */
export async function runRestoreJob(deps: ControllerDeps, run: RestoreJobRun): Promise<void> {
  const { shared, job, signal } = run;
  const r = job.restore;
  const log = deps.logger.with({
    restore: `${r.metadata.namespace}/${r.metadata.name}`,
    key: job.target.source.path,
  });
  const outcomes = new RestoreOutcomes(deps, shared);
  const now = () => deps.clock.now();
  let lease;
  try {
    lease = await acquireSlot(shared.limiter, {
      id: `restore/${r.metadata.namespace}/${r.metadata.name}`,
      cluster: job.target.clusterName,
      storage: job.storage.metadata.name,
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
          signal,
        });
      },
    });
  } catch (e) {
    await outcomes.stopped(r, { signal, error: e, log });
    return;
  }
  try {
    const latest = await markRunning(deps, { job, signal });
    if (!latest) return;
    const step = { deps, shared, outcomes, job: { ...job, restore: latest }, signal, log };
    try {
      await restoreAndSwap(step);
    } catch (e) {
      await outcomes.stopped(latest, { signal, error: e, log });
    }
  } finally {
    lease.release();
  }
}

/** Records Running on the latest Restore; undefined when it went away or finished meanwhile. */
async function markRunning(
  deps: ControllerDeps,
  o: { job: RestoreJob; signal: AbortSignal },
): Promise<Restore | undefined> {
  const { job, signal } = o;
  const r = job.restore;
  const latest = await deps.client.find<Restore>(RestoreKind, {
    namespace: r.metadata.namespace,
    name: r.metadata.name,
    signal,
  });
  if (!latest || latest.metadata.uid !== r.metadata.uid) return undefined;
  if (latest.status?.phase === "Completed" || latest.status?.phase === "Failed") return undefined;
  await updateStatus(deps.client, {
    resource: RestoreKind,
    object: latest,
    compute: (l) =>
      runningRestoreStatus(l, {
        attempt: job.target.attempt,
        source: job.target.source,
        clusterName: job.target.clusterName,
        databaseName: job.target.databaseName,
        now: deps.clock.now(),
      }),
    signal,
  });
  deps.recorder.emit(
    latest,
    "Normal",
    "Started",
    `Restoring ${job.target.source.path} into database "${job.target.databaseName}"`,
  );
  return latest;
}

/** Checks the dump, then restores into a scratch database and swaps it in (or finishes a swap). */
async function restoreAndSwap(step: Step): Promise<void> {
  const { deps, job, signal, log } = step;
  const executor = new PgExecutor(job.cluster.pool, { logger: log, signal });
  const steps = new RestoreTargetExecutor(executor, { logger: log });
  const place = placementOf(job.restore, {
    databaseName: job.target.databaseName,
    database: job.database,
  });
  let store: ObjectStore | undefined;
  let outcome: RestoreOutcome;
  try {
    store = await openStore(deps.client, job.storage, { env: job.env, logger: log, signal });
    const manifest = (await readRestoreManifest(store, job.target.source.path, { signal }))!;
    await checkManifest(step, manifest);
    if (await steps.swapped(place)) {
      log.info("An earlier attempt swapped the restored database in; finishing it");
      outcome = { sha256: manifest.sha256, storedBytes: manifest.compressedSize, durationMs: 0 };
    } else {
      await steps.cleanup(place);
      if (job.restore.spec.onConflict !== "drop") {
        const n = await steps.targetObjects(place);
        if (n > 0) throw notEmpty(place.target, n);
      }
      outcome = await restoreIntoScratch(step, { store, manifest, steps, place });
    }
  } finally {
    await store?.close().catch(() => {});
  }
  await finish(step, { executor, steps, place, outcome });
}

/** Restores into the scratch database as the temporary login role, then swaps it in. */
async function restoreIntoScratch(
  step: Step,
  o: {
    store: ObjectStore;
    manifest: BackupManifest;
    steps: RestoreTargetExecutor;
    place: RestorePlacement;
  },
): Promise<RestoreOutcome> {
  const { job, signal, log } = step;
  // The login role's password lives only in this process and in psql's environment.
  const password = generatePassword(32);
  try {
    await o.steps.prepare(o.place, { verifier: await scramVerifier(password) });
    const result = await runTool(step, { ...o, password });
    await o.steps.releaseLoginRole(o.place);
    await o.steps.swap(o.place, { requireEmpty: job.restore.spec.onConflict !== "drop" });
    return result;
  } catch (e) {
    // On shutdown the next attempt cleans up (no SQL after the signal); on deletion the
    // reconcile does, once this job ended.
    if (!signal.aborted) {
      await o.steps.cleanup(o.place).catch((err) =>
        log.warn("Cannot clean up after the failed restore; the next reconcile retries", {
          error: errorMessage(err),
        })
      );
    }
    throw e;
  }
}

/** Runs psql or pg_restore into the scratch database as the login role, acting as the owner. */
async function runTool(
  step: Step,
  o: { store: ObjectStore; manifest: BackupManifest; place: RestorePlacement; password: string },
): Promise<RestoreOutcome> {
  const { deps, job, signal, log } = step;
  const { target } = job;
  const versionNum = job.cluster.cluster.status?.versionNum;
  await using conn = await openJobConnection(job.cluster.server, o.place.scratch);
  return await runRestore({
    store: o.store,
    key: target.source.path,
    manifest: o.manifest,
    connection: {
      ...conn.connection,
      user: o.place.loginRole,
      password: o.password,
      role: o.place.owner,
    },
    signal,
    logger: log,
    clock: deps.clock,
    ...(target.source.format ? { format: target.source.format } : {}),
    ...(job.toolDirs ? { toolDirs: job.toolDirs } : {}),
    ...(versionNum ? { serverVersion: parseServerVersionNum(versionNum) } : {}),
  });
}

/** Refuses a dump this Restore may not use (trust.ts), before anything touches PostgreSQL. */
async function checkManifest(step: Step, manifest: BackupManifest): Promise<void> {
  const { deps, shared, job, signal } = step;
  const ns = job.restore.metadata.namespace ?? "";
  const restores = job.storage.spec.restores;
  let keys;
  try {
    keys = await shared.keyring.verifyingKeys({ signal });
  } catch (e) {
    throw new StepError("RestoreFailed", errorMessage(e));
  }
  const grant = restores?.crossNamespace;
  let labels: Record<string, string> = {};
  if (needsLabels(grant)) {
    const n = await deps.client.find<KubeObject<unknown, unknown>>(NamespaceResource, {
      name: ns,
      signal,
    });
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

/** Re-applies the grants, re-enqueues the dependents, drops the old database, then Completed. */
async function finish(
  step: Step,
  o: {
    executor: PgExecutor;
    steps: RestoreTargetExecutor;
    place: RestorePlacement;
    outcome: RestoreOutcome;
  },
): Promise<void> {
  const { job, log } = step;
  try {
    await o.executor.ensureDatabase(databaseSpecOf(job.database));
  } catch (e) {
    throw new StepError(
      "GrantsFailed",
      `Restored, but cannot re-apply the grants of Database "${job.database.metadata.name}": ` +
        errorMessage(e),
    );
  }
  await touchDependents(step.deps, { database: job.database, log, signal: step.signal });
  // The old database goes before Completed is written, so Completed means it is gone; if the
  // drop fails, the reconcile's cleanup drops it later.
  await o.steps.dropReplaced(o.place).catch((e) =>
    log.warn("Cannot drop the replaced database yet", { error: errorMessage(e) })
  );
  await step.outcomes.completed(job, o.outcome);
}
