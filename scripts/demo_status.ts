/**
 * Which of the demo's resources are not done yet, and why, from `kubectl get -o json`: pure, so
 * the demo's progress line and its timeout report say the same thing and are unit-tested.
 */

/** The part of a dbtether object this reads. */
export interface DemoObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  status?: {
    phase?: string;
    message?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/** A resource that is not done, and why. */
export interface Pending {
  /** `kind/namespace/name` (or `kind/name` for cluster-scoped kinds). */
  id: string;
  /** The Ready condition's reason, else the phase, else "NoStatus". */
  reason: string;
  message: string;
}

/** The phase in which each kind is done. */
const DONE: Record<string, string> = {
  DBCluster: "Connected",
  Backup: "Completed",
  Restore: "Completed",
};

/** Whether `o` reached the state the demo waits for. */
export function isDone(o: DemoObject): boolean {
  const want = DONE[o.kind] ?? "Ready";
  return o.status?.phase === want;
}

function idOf(o: DemoObject): string {
  const kind = o.kind.toLowerCase();
  return o.metadata.namespace
    ? `${kind}/${o.metadata.namespace}/${o.metadata.name}`
    : `${kind}/${o.metadata.name}`;
}

/** The resources of `items` that are not done, sorted by id. */
export function pendingOf(items: readonly DemoObject[]): Pending[] {
  return items.filter((o) => !isDone(o)).map((o) => {
    const ready = o.status?.conditions?.find((c) => c.type === "Ready");
    const reason = ready?.reason ?? o.status?.phase ?? "NoStatus";
    const message = ready?.message ?? o.status?.message ??
      "the controller has not reported on it yet";
    return { id: idOf(o), reason, message };
  }).sort((a, b) => a.id.localeCompare(b.id));
}

/** One progress line: how many are done, and the first few pending ones with their reason. */
export function progressLine(items: readonly DemoObject[], max = 3): string {
  const pending = pendingOf(items);
  const done = items.length - pending.length;
  if (pending.length === 0) return `All ${items.length} resources are ready.`;
  const shown = pending.slice(0, max).map((p) => `${p.id} (${p.reason})`).join(", ");
  const more = pending.length > max ? ` and ${pending.length - max} more` : "";
  return `${done}/${items.length} ready; waiting for ${shown}${more}`;
}
