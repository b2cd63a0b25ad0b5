/**
 * How a restore run ends, recorded: Completed (after the grants are re-applied and the Database
 * and its users are re-enqueued), back to Pending after a shutdown or while the server is
 * unreachable, or Failed with a reason (failure.ts). These writes do not pass the job's signal:
 * an interruption must be recorded after the abort.
 */
import type { Database } from "../../crds/database.ts";
import { DatabaseKind } from "../../crds/database.ts";
import { type DatabaseUser, DatabaseUserKind } from "../../crds/database_user.ts";
import { type Restore, RestoreKind } from "../../crds/restore.ts";
import { errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { kubeTime } from "../../lib/time.ts";
import { MERGE_PATCH } from "../runtime/kube.ts";
import { updateStatus } from "../runtime/objects.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import type { BackupShared } from "../services/backup_shared.ts";
import { JobStopped } from "../services/job_runner.ts";
import { restoreFailure } from "./failure.ts";
import type { RestoreJob, RestoreOutcome } from "./job_spec.ts";
import { completedRestoreStatus, failedRestoreStatus, pendingRestoreStatus } from "./status.ts";

export const RESTORED_AT_ANNOTATION = "dbtether.io/restored-at";

/** Records the outcomes of restore runs (status, metrics, Events). */
export class RestoreOutcomes {
  constructor(private readonly deps: ControllerDeps, private readonly shared: BackupShared) {}

  #write(r: Restore, compute: (latest: Restore) => Restore["status"] | undefined) {
    return updateStatus(this.deps.client, { resource: RestoreKind, object: r, compute });
  }

  /** Completed: status, metrics, Event. */
  async completed(job: RestoreJob, outcome: RestoreOutcome): Promise<void> {
    const { target } = job;
    const now = this.deps.clock.now();
    await this.#write(job.restore, (l) =>
      completedRestoreStatus(l, {
        sha256: outcome.sha256,
        bytesRead: outcome.storedBytes,
        durationMs: outcome.durationMs,
        database: target.databaseName,
        now,
      }));
    this.shared.metrics.restores.inc({ result: "Completed" });
    this.shared.metrics.restoreDuration.observe(outcome.durationMs / 1000);
    this.deps.recorder.emit(
      job.restore,
      "Normal",
      "Completed",
      `Restored ${target.source.path} into database "${target.databaseName}" ` +
        `(${outcome.storedBytes} bytes in ${outcome.durationMs} ms)`,
    );
  }

  /** Why the run ended without success: deleted, interrupted, server unreachable, or failed. */
  async stopped(r: Restore, o: { signal: AbortSignal; error: unknown; log: Logger }) {
    const { signal, log } = o;
    const now = this.deps.clock.now();
    const why = signal.aborted && signal.reason instanceof JobStopped ? signal.reason : undefined;
    if (why?.why === "deleted") return;
    if (why?.why === "shutdown") {
      log.info("Restore interrupted by shutdown; the next leader retries it");
      await this.#write(
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
    const { reason, message } = restoreFailure(o.error);
    if (reason === "ClusterNotReady") {
      // The server is unreachable: not the dump's fault; retry through the controller's backoff.
      await this.#write(r, (l) => pendingRestoreStatus(l, { reason, message, now }))
        .catch(() => {});
      return;
    }
    log.warn("Restore failed", { reason, error: message });
    await this.#write(
      r,
      (l) =>
        l.status?.phase === "Completed"
          ? undefined
          : failedRestoreStatus(l, { reason, message, now }),
    );
    this.shared.metrics.restores.inc({ result: reason });
    this.deps.recorder.emit(r, "Warning", "Failed", message);
  }
}

/**
 * Annotates the Database and its DatabaseUsers so their controllers re-apply extensions,
 * memberships, role settings and per-user grants on the swapped-in database.
 */
export async function touchDependents(
  deps: ControllerDeps,
  o: { database: Database; log: Logger; signal: AbortSignal },
): Promise<void> {
  const db = o.database;
  const ns = db.metadata.namespace ?? "";
  const refers = (ref: { name: string; namespace?: string | undefined } | undefined, own: string) =>
    ref !== undefined && ref.name === db.metadata.name && (ref.namespace ?? own) === ns;
  const at = kubeTime(deps.clock.now());
  const annotate = { metadata: { annotations: { [RESTORED_AT_ANNOTATION]: at } } };
  const { signal } = o;
  try {
    await deps.client.patch(DatabaseKind, {
      namespace: ns,
      name: db.metadata.name,
      body: annotate,
      contentType: MERGE_PATCH,
      signal,
    });
    const users = await deps.client.list<DatabaseUser>(DatabaseUserKind, { signal });
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
        signal,
      });
    }
  } catch (e) {
    o.log.warn("Cannot re-enqueue the users of the restored database", {
      error: errorMessage(e),
    });
  }
}
