/**
 * Pure decisions of the BackupSchedule controller: from the schedule, the Backups it owns and
 * the time, what to do about the current slot.
 *
 * Invariants:
 * - Only the newest slot that is due counts: slots missed during downtime collapse into one
 *   run (`missed` says how many were passed over).
 * - A slot is handled once. The slots already handled are those up to the newest of
 *   status.lastScheduleTime, the slots of the Backups this schedule owns and its creation, so
 *   a lost status write or a restart finds the work a previous attempt did; the Backup's
 *   deterministic name (names.ts) fences the rest: creating it twice fails with AlreadyExists.
 * - A Backup of that name this schedule does not own is never adopted: the slot is refused.
 * - A slot that cannot start within startingDeadlineSeconds of its time is skipped and
 *   reported, never run late.
 * - Slots that came while the schedule was paused (dbtether.io/reconcile: paused) are skipped
 *   and reported by the first pass after the pause, never caught up.
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupSchedule } from "../../crds/backup_schedule.ts";
import { countSlots, type ParsedSchedule, type SlotSchedule } from "../../backup/slots.ts";
import { backupNameForSlot, SLOT_ANNOTATION } from "./names.ts";

/** Whether the schedule's namespace may use its BackupStorage (read by the reconciler). */
export type StorageAccess =
  | { ok: true }
  | { ok: false; reason: "StorageNotFound" | "NamespaceNotAllowed"; message: string };

export interface ScheduleObservation {
  schedule: BackupSchedule;
  parsed: ParsedSchedule;
  /** The Backups this schedule owns ({@link ownsBackup}). */
  owned: readonly Backup[];
  /** Looks up a Backup of the schedule's namespace by name (any owner). */
  backupNamed: (name: string) => Backup | undefined;
  storage: StorageAccess;
  now: number;
  /**
   * The first pass after a pause (the status still shows Paused=True): the slots that came while
   * paused are skipped, not caught up.
   */
  resuming?: boolean;
}

/** What to do about the current slot. Every kind but `invalid` carries the next slot. */
export type SlotAction =
  /** The cron expression or time zone does not parse: terminal until the spec changes. */
  | { kind: "invalid"; message: string }
  | { kind: "suspended"; next: number | undefined }
  /** Nothing is due; look again at `next`. */
  | { kind: "idle"; next: number | undefined }
  /** The storage cannot be used: no Backup is created, the reason is reported. */
  | { kind: "blocked"; reason: StorageBlock; message: string; next: Next }
  | { kind: "create"; slot: number; name: string; missed: number; next: Next }
  /** Replace: delete the running Backups, then create. */
  | { kind: "replace"; slot: number; name: string; running: string[]; missed: number; next: Next }
  /** Forbid: the previous Backup still runs; the slot starts when it ends (deadline allowing). */
  | { kind: "wait"; slot: number; running: string[]; next: Next }
  /**
   * The slot is older than startingDeadlineSeconds, or (`paused`) it passed while reconciling was
   * paused: record it as handled and report it.
   */
  | {
    kind: "skip";
    slot: number;
    lateSeconds: number;
    missed: number;
    next: Next;
    paused?: true;
  }
  /** A Backup with the slot's name exists but is not this schedule's. */
  | { kind: "taken"; slot: number; name: string; next: Next };

type Next = number | undefined;
type StorageBlock = Extract<StorageAccess, { ok: false }>["reason"];

/** Whether a Backup has not finished yet. */
export function backupRunning(b: Backup): boolean {
  const phase = b.status?.phase;
  return !b.metadata.deletionTimestamp && phase !== "Completed" && phase !== "Failed";
}

/** Whether `b`'s controller ownerReference is `schedule` (by uid). */
export function ownsBackup(schedule: BackupSchedule, b: Backup): boolean {
  const uid = schedule.metadata.uid;
  return uid !== undefined &&
    (b.metadata.ownerReferences ?? []).some((r) => r.uid === uid && r.controller === true);
}

/** The slot a scheduled Backup was created for (its annotation), or undefined. */
export function slotOf(b: Backup): number | undefined {
  const v = b.metadata.annotations?.[SLOT_ANNOTATION];
  const t = v ? Date.parse(v) : NaN;
  return Number.isNaN(t) ? undefined : t;
}

/** The newest slot already handled (or the schedule's creation, before which nothing runs). */
export function handledUpTo(schedule: BackupSchedule, owned: readonly Backup[]): number {
  let t = Date.parse(schedule.metadata.creationTimestamp ?? "") || 0;
  const last = Date.parse(schedule.status?.lastScheduleTime ?? "");
  if (last > t) t = last;
  for (const b of owned) {
    const s = slotOf(b);
    if (s !== undefined && s > t) t = s;
  }
  return t;
}

/** Plans the current slot of a BackupSchedule. */
export function planSlot(o: ScheduleObservation): SlotAction {
  if (!o.parsed.ok) return { kind: "invalid", message: o.parsed.message };
  const cron = o.parsed.schedule;
  const next = cron.nextAfter(o.now);
  const since = handledUpTo(o.schedule, o.owned);
  const slot = cron.latestAtOrBefore(o.now);
  const due = slot !== undefined && slot > since;
  // The first pass after a pause records the slots that came meanwhile as skipped, before
  // anything else that holds this pass (suspended, storage refused): the pass that removes Paused
  // is the only one that knows. What held it is reported by the pass right after (next: now).
  if (o.resuming && due) {
    const held = o.schedule.spec.suspend === true || !o.storage.ok;
    return {
      kind: "skip",
      slot,
      lateSeconds: Math.floor((o.now - slot) / 1000),
      missed: countSlots(cron, { after: since, upTo: slot }) - 1,
      next: held ? o.now : next,
      paused: true,
    };
  }
  if (o.schedule.spec.suspend) return { kind: "suspended", next };
  // Reported at once, not only when a slot comes: the storage is unusable for every slot.
  if (!o.storage.ok) {
    return { kind: "blocked", reason: o.storage.reason, message: o.storage.message, next };
  }
  if (!due) return { kind: "idle", next };
  const missed = countSlots(cron, { after: since, upTo: slot }) - 1;
  const deadline = o.schedule.spec.startingDeadlineSeconds;
  const lateMs = o.now - slot;
  if (deadline !== undefined && lateMs > deadline * 1000) {
    return { kind: "skip", slot, lateSeconds: Math.floor(lateMs / 1000), missed, next };
  }
  const name = backupNameForSlot(o.schedule.metadata.name, slot);
  const existing = o.backupNamed(name);
  if (existing && !ownsBackup(o.schedule, existing)) return { kind: "taken", slot, name, next };
  if (existing) return { kind: "idle", next };
  return planStart(o, { cron, slot, name, missed, next });
}

function planStart(
  o: ScheduleObservation,
  s: { cron: SlotSchedule; slot: number; name: string; missed: number; next: Next },
): SlotAction {
  const { slot, name, missed, next } = s;
  const running = o.owned.filter(backupRunning).map((b) => b.metadata.name).sort();
  if (running.length === 0) return { kind: "create", slot, name, missed, next };
  switch (o.schedule.spec.concurrencyPolicy) {
    case "Allow":
      return { kind: "create", slot, name, missed, next };
    case "Replace":
      return { kind: "replace", slot, name, running, missed, next };
    default:
      return { kind: "wait", slot, running, next };
  }
}

/** How long until the controller must look again after `action`, or undefined: never. */
export function recheckAfterMs(action: SlotAction, now: number): number | undefined {
  if (action.kind === "invalid") return undefined;
  // A waiting slot is re-queued by the watch on its Backups; the deadline still needs a timer.
  return action.next === undefined ? undefined : Math.max(0, action.next - now);
}
