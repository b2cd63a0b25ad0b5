/**
 * BackupSchedule controller: gather (the schedule, the Backups it owns, whether its namespace
 * may use the BackupStorage) → plan the slot (plan.ts) → act (create the slot's Backup, whose
 * deterministic name is the fence) → retention (retention_plan.ts, stored.ts) → status
 * (status.ts, written only when it changed) → requeue at the next slot.
 *
 * The Backups themselves are run by the Backup controller; this one only creates them, owned
 * by the schedule (controller ownerReference) and labelled with it. Deleting a schedule has no
 * finalizer and deletes nothing in storage.
 */
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type BackupSchedule, BackupScheduleKind } from "../../crds/backup_schedule.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { parseSchedule } from "../../backup/slots.ts";
import { AlreadyExistsError, errorMessage, RetryableError } from "../../lib/errors.ts";
import type { Controller, ReconcileContext, Result } from "../runtime/controller.ts";
import { done, requeueAfter } from "../runtime/controller.ts";
import { ownerRef, updateStatus } from "../runtime/objects.ts";
import type { Reconciler } from "../runtime/reconciler.ts";
import { pauseGate, wasPaused } from "../runtime/pause.ts";
import type { ControllerDeps, InformerSet } from "../runtime/shared.ts";
import { OWNER_UID_INDEX, ownerUids } from "../runtime/indexes.ts";
import type { Services } from "../services/services.ts";
import { type BackupShared, startJobController } from "../services/backup_shared.ts";
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { planVerification, type VerifyPlan } from "./verify_plan.ts";
import { Verifier } from "./verify_job.ts";
import { checkStorageNamespace } from "../services/storage_access.ts";
import { type ScheduleMetrics, scheduleMetrics } from "./metrics.ts";
import {
  SCHEDULE_LABEL,
  SCHEDULE_NAMESPACE_LABEL,
  scheduleToken,
  SLOT_ANNOTATION,
} from "./names.ts";
import {
  ownsBackup,
  planSlot,
  recheckAfterMs,
  type SlotAction,
  type StorageAccess,
} from "./plan.ts";
import { RetentionRunner } from "./retention.ts";
import {
  computeScheduleStatus,
  type ScheduleEvent,
  scheduleEvents,
  type ScheduleOutcome,
} from "./status.ts";
import { backupScheduleWatches } from "./watches.ts";

/** Slack after a slot's instant before it is planned, so the clock has surely passed it. */
const SLOT_SLACK_MS = 100;

/** The BackupSchedule controller's {@link Reconciler}. */
export class BackupScheduleReconciler implements Reconciler {
  readonly #schedules: InformerSet<BackupSchedule>;
  readonly #backups: InformerSet<Backup>;
  readonly #storages: InformerSet<BackupStorage>;
  readonly #retention: RetentionRunner;
  readonly #verifier: Verifier;

  constructor(
    private readonly deps: ControllerDeps,
    private readonly o: {
      services: Services;
      metrics: ScheduleMetrics;
      jobs: BackupShared;
      enqueue: (key: string) => void;
    },
  ) {
    this.#schedules = deps.informers.for<BackupSchedule>(BackupScheduleKind);
    this.#backups = deps.informers.for<Backup>(BackupKind).withIndex(OWNER_UID_INDEX, ownerUids);
    this.#storages = deps.informers.for<BackupStorage>(BackupStorageKind);
    this.#retention = new RetentionRunner(deps, {
      storages: this.#storages,
      env: o.services.env,
      metrics: o.metrics,
    });
    this.#verifier = new Verifier(deps, {
      services: o.services,
      jobs: o.jobs,
      storages: this.#storages,
      databases: deps.informers.for<Database>(DatabaseKind),
      metrics: o.metrics,
      enqueue: o.enqueue,
    });
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<Result> {
    const s = this.#schedules.get(key);
    if (!s || s.metadata.deletionTimestamp) return done;
    // Paused: no Backup created, no retention, no verification, no timer; the first pass after
    // the pause skips the slots that came meanwhile (plan.ts). pause_and_observe.md.
    const resuming = wasPaused(s);
    const gate = { resource: BackupScheduleKind, object: s, signal: ctx.signal };
    if ((await pauseGate(this.deps, gate)).paused) return done;
    const ns = s.metadata.namespace ?? "";
    const now = this.deps.clock.now();
    let owned = this.#ownedBy(s);
    const action = planSlot({
      schedule: s,
      parsed: parseSchedule(s.spec.schedule, s.spec.timeZone ?? "UTC"),
      owned,
      backupNamed: (name) => this.#backups.get(`${ns}/${name}`),
      storage: await this.#storageAccess(s, ctx),
      now,
      resuming,
    });
    const acted = await this.#act(s, action, ctx);
    if (acted.created) owned = [...owned.filter((b) => b !== acted.created), acted.created];
    const retention = action.kind === "invalid"
      ? undefined
      : await this.#retention.run(s, { owned, now, ctx }).catch((e: unknown) => {
        // The slot is done whatever retention meets (storage down): report it, and let the
        // next reconcile try again, since nothing was recorded as applied.
        this.deps.recorder.emit(s, "Warning", "RetentionFailed", errorMessage(e));
        return undefined;
      });
    if (retention) {
      const gone = new Set(retention.deleted);
      owned = owned.filter((b) => !gone.has(b.metadata.name));
    }
    await this.#writeStatus(s, { action: acted.action, owned, now, retention }, ctx);
    this.o.metrics.observe(s, acted.action);
    const verify = await this.#verify(s, { owned, now, ctx });
    const after = earliest(
      recheckAfterMs(acted.action, this.deps.clock.now()),
      verify.kind === "none" && verify.next !== undefined
        ? verify.next - this.deps.clock.now()
        : undefined,
    );
    return after === undefined ? done : requeueAfter(Math.max(0, after) + SLOT_SLACK_MS);
  }

  /**
   * spec.verify: cleans up after a verification that was cut off (status.verifying set, no job
   * here), else starts the one the plan says is due. Runs after the status write, which the
   * verification's own writes then build on.
   */
  async #verify(
    s0: BackupSchedule,
    o: { owned: readonly Backup[]; now: number; ctx: ReconcileContext },
  ): Promise<VerifyPlan> {
    const s = this.#schedules.get(`${s0.metadata.namespace}/${s0.metadata.name}`) ?? s0;
    if (this.#verifier.running(s)) return { kind: "none" };
    if (this.#verifier.stale(s)) return { kind: "none", next: this.deps.clock.now() + 1000 };
    if (s.status?.verifying) {
      await this.#verifier.recover(s, o.ctx.signal);
      return { kind: "none", next: this.deps.clock.now() };
    }
    const v = s.spec.verify;
    const plan = planVerification(s, {
      owned: o.owned,
      now: o.now,
      ...(v?.schedule ? { parsed: parseSchedule(v.schedule, s.spec.timeZone ?? "UTC") } : {}),
    });
    if (plan.kind === "invalid") {
      this.deps.recorder.emit(s, "Warning", "InvalidSchedule", plan.message);
    }
    if (plan.kind === "verify") await this.#verifier.start(s, plan.backup, o.ctx.signal);
    return plan;
  }

  #ownedBy(s: BackupSchedule): Backup[] {
    const uid = s.metadata.uid;
    if (!uid) return [];
    return this.#backups.byIndex(OWNER_UID_INDEX, uid).filter((b) =>
      b.metadata.namespace === s.metadata.namespace && ownsBackup(s, b)
    );
  }

  async #storageAccess(s: BackupSchedule, ctx: ReconcileContext): Promise<StorageAccess> {
    const name = s.spec.storageRef.name;
    const storage = this.#storages.get(name);
    if (!storage) {
      return {
        ok: false,
        reason: "StorageNotFound",
        message: `BackupStorage "${name}" does not exist: no Backup is created until it does`,
      };
    }
    try {
      await checkStorageNamespace(this.deps.client, {
        storage,
        namespace: s.metadata.namespace ?? "",
        signal: ctx.signal,
      });
      return { ok: true };
    } catch (e) {
      if (!(e instanceof RetryableError) || e.reason !== "NamespaceNotAllowed") throw e;
      return { ok: false, reason: "NamespaceNotAllowed", message: e.message };
    }
  }

  async #act(
    s: BackupSchedule,
    action: SlotAction,
    ctx: ReconcileContext,
  ): Promise<{ action: SlotAction; created?: Backup }> {
    if (action.kind === "replace") {
      for (const name of action.running) {
        const b = this.#backups.get(`${s.metadata.namespace}/${name}`);
        await this.deps.client.delete(BackupKind, {
          namespace: s.metadata.namespace,
          name,
          ...(b?.metadata.uid ? { uid: b.metadata.uid } : {}),
          signal: ctx.signal,
        });
      }
    }
    if (action.kind !== "create" && action.kind !== "replace") return { action };
    try {
      const created = await this.deps.client.create<Backup>(BackupKind, {
        namespace: s.metadata.namespace,
        body: scheduledBackup(s, action.slot, action.name),
        signal: ctx.signal,
      });
      ctx.logger.info("Created scheduled Backup", { backup: action.name, slot: action.slot });
      return { action, created };
    } catch (e) {
      if (!(e instanceof AlreadyExistsError)) throw e;
      // The fence: the slot's Backup exists. Ours (a retry, a restart, another leader's
      // attempt) means the slot is done; anyone else's is never adopted.
      const existing = await this.deps.client.find<Backup>(BackupKind, {
        namespace: s.metadata.namespace,
        name: action.name,
        signal: ctx.signal,
      });
      if (existing && ownsBackup(s, existing)) {
        return { action: { kind: "idle", next: action.next }, created: existing };
      }
      return {
        action: { kind: "taken", slot: action.slot, name: action.name, next: action.next },
      };
    }
  }

  async #writeStatus(
    s: BackupSchedule,
    outcome: ScheduleOutcome,
    ctx: ReconcileContext,
  ): Promise<void> {
    let events: ScheduleEvent[] = [];
    const written = await updateStatus(this.deps.client, {
      resource: BackupScheduleKind,
      object: s,
      compute: (view) => {
        const next = computeScheduleStatus(view, outcome);
        events = scheduleEvents(view.status, next, outcome);
        return next;
      },
      signal: ctx.signal,
    });
    if (!written) return;
    for (const e of events) this.deps.recorder.emit(s, e.type, e.reason, e.message);
  }
}

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

/** The Backup a schedule creates for `slot`. */
export function scheduledBackup(s: BackupSchedule, slot: number, name: string): Backup {
  const { databaseRef, storageRef, filenameTemplate, format, compression } = s.spec;
  return {
    apiVersion: BackupKind.apiVersion,
    kind: "Backup",
    metadata: {
      name,
      namespace: s.metadata.namespace ?? "",
      labels: {
        [SCHEDULE_LABEL]: scheduleToken(s.metadata.name),
        [SCHEDULE_NAMESPACE_LABEL]: s.metadata.namespace ?? "",
      },
      annotations: { [SLOT_ANNOTATION]: new Date(slot).toISOString() },
      ownerReferences: [ownerRef(s)],
    },
    spec: {
      databaseRef: { name: databaseRef.name },
      storageRef: { name: storageRef.name },
      ...(filenameTemplate === undefined ? {} : { filenameTemplate }),
      format,
      compression,
    },
  };
}

/** Starts the BackupSchedule controller. */
export function setupBackupScheduleController(
  deps: ControllerDeps,
  services: Services & { jobs: BackupShared },
): Controller {
  return startJobController(deps, {
    name: "backupschedule",
    reconciler: (enqueue) =>
      new BackupScheduleReconciler(deps, {
        services,
        jobs: services.jobs,
        enqueue,
        metrics: scheduleMetrics(deps.metrics),
      }),
    watches: backupScheduleWatches(deps),
  });
}
