/**
 * Runs a schedule's retention plan (retention_plan.ts): for each Backup to delete, its stored
 * dump and manifest first (stored.ts, only objects that name it as their writer), then the
 * Backup resource, guarded by its uid. A Backup whose objects cannot be proven its own, or
 * whose BackupStorage is gone or no longer open to the namespace, is kept and reported.
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupSchedule } from "../../crds/backup_schedule.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import type { ReconcileContext } from "../runtime/controller.ts";
import type { ControllerDeps, InformerSet } from "../runtime/shared.ts";
import type { ScheduleMetrics } from "./metrics.ts";
import { planRetention } from "./retention_plan.ts";
import type { RetentionOutcome } from "./status.ts";
import { deleteScheduledBackup } from "./stored.ts";

export class RetentionRunner {
  constructor(
    private readonly deps: ControllerDeps,
    private readonly o: {
      storages: InformerSet<BackupStorage>;
      env: Record<string, string | undefined>;
      metrics: ScheduleMetrics;
    },
  ) {}

  /** Applies the schedule's policy if its gates open; undefined when it did not run. */
  async run(
    s: BackupSchedule,
    o: { owned: readonly Backup[]; now: number; ctx: ReconcileContext },
  ): Promise<RetentionOutcome | undefined> {
    const plan = planRetention(s, { owned: o.owned, now: o.now });
    if (plan.kind === "none") return undefined;
    const base = { appliedAfter: plan.after, generation: s.metadata.generation };
    if (plan.dryRun) {
      const would = [...plan.expired, ...plan.failed].map((b) => b.metadata.name);
      return { ...base, deleted: [], wouldDelete: would };
    }
    const deleted: string[] = [];
    for (const b of [...plan.expired, ...plan.failed]) {
      if (await this.#delete(s, b, o.ctx)) deleted.push(b.metadata.name);
    }
    if (deleted.length) {
      o.ctx.logger.info("Retention deleted Backups", { backups: deleted });
      this.o.metrics.retentionDeletions.inc(
        { namespace: s.metadata.namespace ?? "", schedule: s.metadata.name },
        deleted.length,
      );
    }
    return { ...base, deleted, wouldDelete: [] };
  }

  /** Deletes one Backup and its stored objects; false (and a Warning) when it is kept. */
  async #delete(s: BackupSchedule, b: Backup, ctx: ReconcileContext): Promise<boolean> {
    const kept = await deleteScheduledBackup(this.deps.client, b, {
      storage: this.o.storages.get(b.spec.storageRef.name),
      env: this.o.env,
      logger: ctx.logger,
      signal: ctx.signal,
    });
    if (kept === undefined) return true;
    this.deps.recorder.emit(
      s,
      "Warning",
      "RetentionRefused",
      `Retention keeps Backup "${b.metadata.name}": ${kept}`,
    );
    return false;
  }
}
