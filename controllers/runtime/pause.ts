/**
 * The `dbtether.io/reconcile: paused` annotation, for any kind whose status has conditions: the
 * rule that reads it (pure), the `Paused` condition it shows, and the gate a reconciler calls
 * first. A paused object gets no SQL, no Secret or finalizer write and no deletion cleanup; only
 * its status (the Paused condition) and an Event. docs/design/pause_and_observe.md.
 */
import type { KubeObject } from "./types.ts";
import type { EventRecorder } from "./events.ts";
import type { KubeClient, Resource } from "./kube.ts";
import { type Condition, getCondition, setCondition } from "./conditions.ts";
import { updateStatus } from "./objects.ts";

/** The annotation; `paused` stops reconciling the object. */
export const PAUSE_ANNOTATION = "dbtether.io/reconcile";

/** Reasons of the Paused condition. */
export type PauseReason = "ReconcilePaused" | "InvalidPauseValue";

/** What the annotation says. */
export type PauseState =
  | { kind: "active" }
  | { kind: "paused" }
  /** A value that is neither `paused` nor empty: the object is reconciled as if it were absent. */
  | { kind: "invalid"; value: string };

/**
 * The documented rule: the value trimmed of whitespace and compared case-insensitively; `paused`
 * pauses; absent, empty or `active` reconciles; anything else reconciles and is reported
 * (Paused=False, InvalidPauseValue), never guessed at.
 */
export function pauseStateOf(
  o: { metadata: { annotations?: Record<string, string> | undefined } },
): PauseState {
  const raw = o.metadata.annotations?.[PAUSE_ANNOTATION];
  if (raw === undefined) return { kind: "active" };
  const v = raw.trim().toLowerCase();
  if (v === "paused") return { kind: "paused" };
  if (v === "" || v === "active") return { kind: "active" };
  return { kind: "invalid", value: raw };
}

/** A value shown in a message: at most 63 characters, JSON-quoted (control characters escaped). */
function shown(value: string): string {
  const cut = [...value].slice(0, 63).join("");
  return JSON.stringify(cut) + (cut.length < value.length ? "…" : "");
}

/**
 * `conditions` with the Paused condition the state calls for: True while paused, False with
 * InvalidPauseValue for a value the rule does not know, none otherwise.
 */
export function withPause(
  conditions: readonly Condition[] | undefined,
  state: PauseState,
  at: { generation?: number | undefined; now: Date; deleting?: boolean },
): Condition[] {
  if (state.kind === "active") return (conditions ?? []).filter((c) => c.type !== "Paused");
  const c = state.kind === "paused"
    ? {
      type: "Paused",
      status: true,
      reason: "ReconcilePaused" satisfies PauseReason,
      message: `Reconciling is paused by the ${PAUSE_ANNOTATION} annotation: no SQL, no ` +
        "Secret writes, no deletion cleanup until it is removed" +
        (at.deleting ? "; the deletion waits for that" : ""),
    }
    : {
      type: "Paused",
      status: false,
      reason: "InvalidPauseValue" satisfies PauseReason,
      message: `Annotation ${PAUSE_ANNOTATION} has the value ${shown(state.value)}, which ` +
        `is ignored: only "paused" pauses; the object is reconciled`,
    };
  return setCondition(conditions, c, at);
}

/** Whether the status shows a pause (Paused=True). */
export function wasPaused(o: KubeObject<unknown, { conditions?: Condition[] }>): boolean {
  return getCondition(o.status?.conditions, "Paused")?.status === "True";
}

/** What {@link pauseGate} needs. */
export interface PauseGateDeps {
  client: KubeClient;
  recorder: EventRecorder;
  clock: { now(): number };
}

/**
 * Called first by a reconciler. Paused: writes the Paused condition (the other conditions and
 * `observedGeneration` stay as the last reconcile left them: that spec is still the one in
 * effect), emits `Paused` once, and returns true — the reconcile ends there. Otherwise emits
 * `Resumed` when the status still shows a pause (the reconcile's own status write, through
 * {@link withPause}, removes it) or `InvalidPauseValue` on a new unknown value, and returns false.
 * With `writeOnResume` (kinds whose passes often write no status: Backup, BackupSchedule,
 * PostgresDatabase) the gate itself also writes the Paused condition the state calls for when it
 * differs from the status (removed on resume, InvalidPauseValue set); their own status writes keep
 * it through {@link withPause}.
 */
export async function pauseGate(
  deps: PauseGateDeps,
  o: {
    resource: Resource;
    object: KubeObject<unknown, { conditions?: Condition[] }>;
    signal: AbortSignal;
    writeOnResume?: boolean;
  },
): Promise<{ paused: boolean; state: PauseState }> {
  const { object } = o;
  const state = pauseStateOf(object);
  const before = getCondition(object.status?.conditions, "Paused");
  if (state.kind !== "paused") {
    if (before?.status === "True") {
      deps.recorder.emit(object, "Normal", "Resumed", "Reconciling resumed: the pause was lifted");
    }
    if (state.kind === "invalid" && before?.reason !== "InvalidPauseValue") {
      const c = withPause([], state, { now: new Date(deps.clock.now()) })[0]!;
      deps.recorder.emit(object, "Warning", c.reason, c.message);
    }
    if (o.writeOnResume) await writePause(deps, o, state);
    return { paused: false, state };
  }
  await writePause(deps, o, state);
  if (before?.status !== "True") {
    deps.recorder.emit(
      object,
      "Normal",
      "Paused",
      withPause([], state, { now: new Date() })[0]!.message,
    );
  }
  return { paused: true, state };
}

/** Writes the Paused condition `state` calls for (only when the status differs). */
async function writePause(
  deps: PauseGateDeps,
  o: {
    resource: Resource;
    object: KubeObject<unknown, { conditions?: Condition[] }>;
    signal: AbortSignal;
  },
  state: PauseState,
): Promise<void> {
  const { object } = o;
  await updateStatus(deps.client, {
    resource: o.resource,
    object,
    compute: (latest) => {
      const status = { ...(latest.status ?? {}) };
      const conditions = withPause(status.conditions, state, {
        generation: object.metadata.generation,
        now: new Date(deps.clock.now()),
        deleting: object.metadata.deletionTimestamp !== undefined,
      });
      if (conditions.length === 0 && status.conditions === undefined) return undefined;
      status.conditions = conditions;
      return status;
    },
    signal: o.signal,
  });
}
