/**
 * What a DBCluster reconcile does, decided from observed state only: check the connection now,
 * or wait because nothing it depends on changed since the last check inside the interval; and
 * which Events a finished check announces.
 */
import type { DBCluster, DBClusterStatus } from "../../crds/dbcluster.ts";
import { parseGoDuration } from "../../lib/duration.ts";
import { type CheckOutcome, isolationTransition } from "./status.ts";

/** What the last check was based on, so unchanged inputs inside the interval skip the check. */
export interface Checked {
  generation: number | undefined;
  /** The resourceVersions of the credentials and CA Secrets ("-" for a missing one). */
  secretVersion: string;
  at: number;
}

/** One reconcile: check the server, or come back when the interval is over. */
export type DBClusterAction =
  | { kind: "check"; inputs: Omit<Checked, "at"> }
  | { kind: "wait"; afterMs: number };

/** spec.healthCheckInterval, else `defaultMs` (admission validates the pattern). */
export function checkInterval(cluster: DBCluster, defaultMs: number): number {
  try {
    return parseGoDuration(cluster.spec.healthCheckInterval ?? "", "spec.healthCheckInterval") ||
      defaultMs;
  } catch {
    return defaultMs;
  }
}

/**
 * Plans one reconcile of `cluster`, given the last check and the Secrets' versions now.
 * `reachable` is what the other controllers' connects last said of the server (undefined before
 * any): when it disagrees with the status, the server changed since the last check, which runs
 * again at once instead of at the end of the interval.
 */
export function planDBCluster(
  cluster: DBCluster,
  o: {
    last: Checked | undefined;
    secretVersion: string;
    now: number;
    intervalMs: number;
    reachable?: boolean | undefined;
  },
): DBClusterAction {
  const inputs = { generation: cluster.metadata.generation, secretVersion: o.secretVersion };
  const last = o.last;
  const connected = cluster.status?.phase === "Connected";
  if (o.reachable !== undefined && o.reachable !== connected) return { kind: "check", inputs };
  if (
    last && last.generation === inputs.generation &&
    last.secretVersion === inputs.secretVersion &&
    o.now - last.at < o.intervalMs && cluster.status?.phase === "Connected"
  ) {
    return { kind: "wait", afterMs: o.intervalMs - (o.now - last.at) };
  }
  return { kind: "check", inputs };
}

/** An Event to record on the DBCluster. */
export interface ClusterEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/** The Events a check announces, from the status before it and the one written after. */
export function checkEvents(
  o: { before: DBClusterStatus | undefined; written: DBClusterStatus | undefined },
  outcome: CheckOutcome,
): ClusterEvent[] {
  const phase = o.before?.phase;
  if (!outcome.ok) {
    return phase === "Failed"
      ? []
      : [{ type: "Warning", reason: outcome.reason, message: outcome.message }];
  }
  const iso = outcome.isolation;
  const events: ClusterEvent[] = (iso && iso.failure === undefined ? iso.restricted : []).map(
    (r) => ({ type: "Normal", reason: "Restricted", message: restrictedMessage(r) }),
  );
  const change = o.written && isolationTransition(o.before, o.written);
  if (change) events.push(change);
  if (phase !== "Connected") {
    const message = `Connected to PostgreSQL ${outcome.version}`;
    events.push({ type: "Normal", reason: "Connected", message });
  }
  return events;
}

function restrictedMessage(r: { database: string; grantees: string[] }): string {
  const shown = r.grantees.slice(0, 20).map((g) => JSON.stringify(g)).join(", ");
  const more = r.grantees.length > 20 ? ` and ${r.grantees.length - 20} more` : "";
  const who = r.grantees.length
    ? `CONNECT for the ${r.grantees.length} login role(s) dbtether did not create: ${shown}${more}`
    : "nothing: every login role dbtether did not create had CONNECT of its own";
  return `Replaced PUBLIC's CONNECT on database ${JSON.stringify(r.database)} with ${who}`;
}
