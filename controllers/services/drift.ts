/**
 * `spec.managementPolicy: Observe` for the kinds that converge server objects (Database,
 * DatabaseUser): the controller's own planner runs against a dry-run executor (the one
 * `dbtether plan` uses), and what it would send is the drift, reported in the InSync condition.
 * Nothing is sent. docs/design/pause_and_observe.md.
 */
import type { ConditionInput } from "../runtime/conditions.ts";
import type { EventRecorder } from "../runtime/events.ts";
import type { KubeClient, Resource } from "../runtime/kube.ts";
import { removeFinalizer } from "../runtime/objects.ts";
import type { KubeObject } from "../runtime/types.ts";
import type { DryRun } from "../postgres/execute.ts";
import { REFUSAL_REASONS } from "../postgres/claims.ts";
import { redact } from "../postgres/statements.ts";
import { DbtetherError } from "../../lib/errors.ts";

/** The InSync condition's reasons. */
export type InSyncReason = "InSync" | "Differs";

/** What an observation found. */
export interface Drift {
  /** The statements Manage would send, redacted, one line each. */
  differences: string[];
  /** What the dry run could not look at (inside a database that does not exist, ...). */
  notes: string[];
  /** Manage would refuse first (an existing object that is not ours): why. */
  refusal?: { reason: string; message: string };
}

const REFUSALS: ReadonlySet<string> = new Set(REFUSAL_REASONS);

/** A refusal of the SQL module (some, such as AdminOptionMissing, are retryable). */
function isRefusal(e: unknown): e is DbtetherError {
  return e instanceof DbtetherError && REFUSALS.has(e.reason);
}

/**
 * Runs `plan` (the planner with a dry-run executor) as Manage would. When Manage would refuse
 * because the object exists and is not this resource's, the refusal is kept and the planner runs
 * again as if adoption were granted, so the differences still show what adopting would change.
 */
export async function observeDrift(
  plan: (o: { adopting: boolean; dry: DryRun }) => Promise<void>,
): Promise<Drift> {
  let dry: DryRun = { statements: [], notes: [] };
  let refusal: Drift["refusal"];
  try {
    await plan({ adopting: false, dry });
  } catch (e) {
    if (!isRefusal(e)) throw e;
    refusal = { reason: e.reason, message: e.message };
    dry = { statements: [], notes: [] };
    try {
      await plan({ adopting: true, dry });
    } catch (again) {
      if (!isRefusal(again)) throw again;
      dry = { statements: [], notes: [`adopting would be refused too: ${again.message}`] };
    }
  }
  const differences: string[] = [];
  for (const s of dry.statements) {
    for (const sql of [s.sql, ...(s.together ?? [])]) {
      const where = s.database === undefined ? "" : ` (in ${JSON.stringify(s.database)})`;
      const line = redact(sql).replace(/\s*\n\s*/g, " ") + where;
      if (!differences.includes(line)) differences.push(line);
    }
  }
  return { differences, notes: [...new Set(dry.notes)], ...(refusal ? { refusal } : {}) };
}

/** Whether the server matches: nothing to send and nothing refused. */
export function inSync(d: Drift): boolean {
  return d.differences.length === 0 && d.refusal === undefined;
}

/** At most this many statements are listed in the message. */
const LISTED = 20;

/** The InSync condition for an observation. */
export function inSyncCondition(d: Drift, what: string): ConditionInput {
  if (inSync(d)) {
    const notes = d.notes.length ? ` (${d.notes.join("; ")})` : "";
    return {
      type: "InSync",
      status: true,
      reason: "InSync" satisfies InSyncReason,
      message: `The server matches the spec of ${what}${notes}`,
    };
  }
  const parts: string[] = [];
  if (d.refusal) {
    parts.push(`Manage would refuse: ${d.refusal.message} (${d.refusal.reason})`);
  }
  if (d.differences.length) {
    const listed = d.differences.slice(0, LISTED).join("; ");
    const more = d.differences.length > LISTED ? `; and ${d.differences.length - LISTED} more` : "";
    parts.push(
      `${d.differences.length} difference(s), the statements Manage would run: ${listed}${more}`,
    );
  }
  if (d.notes.length) parts.push(`Not compared: ${d.notes.join("; ")}`);
  return {
    type: "InSync",
    status: false,
    reason: "Differs" satisfies InSyncReason,
    message: `${what} differs from the server: ${parts.join(". ")}`,
  };
}

/**
 * Deleting an observed object: only the finalizer an earlier Manage added goes (with an Event
 * saying what was kept); nothing on the server is dropped, released or changed.
 */
export async function releaseObserved(
  deps: { client: KubeClient; recorder: EventRecorder },
  o: {
    resource: Resource;
    object: KubeObject<unknown, unknown>;
    finalizer: string;
    kept: string;
    signal: AbortSignal;
  },
): Promise<void> {
  if (!o.object.metadata.finalizers?.includes(o.finalizer)) return;
  const why = `managementPolicy is Observe: ${o.kept}`;
  deps.recorder.emit(o.object, "Normal", "NotDropped", why);
  await removeFinalizer(deps.client, {
    resource: o.resource,
    object: o.object,
    finalizer: o.finalizer,
    signal: o.signal,
  });
}
