/**
 * DBCluster status from the outcome of a health check. Pure.
 */
import type { DBCluster, DBClusterStatus } from "../../crds/dbcluster.ts";
import { setCondition } from "../runtime/conditions.ts";
import { k8sTime } from "../runtime/objects.ts";

export type CheckOutcome =
  | { ok: true; version: string; versionNum: number }
  | { ok: false; reason: string; message: string };

/** "15.4 (Debian 15.4-1)" or "15.4" → "15.4"; RDS/Aurora report the plain form. */
export function shortVersion(serverVersion: string): string {
  return serverVersion.trim().split(/\s+/)[0] ?? serverVersion;
}

export function clusterStatus(c: DBCluster, outcome: CheckOutcome, now: number): DBClusterStatus {
  const generation = c.metadata.generation;
  const old = c.status ?? {};
  const conditions = setCondition(
    old.conditions,
    outcome.ok
      ? {
        type: "Ready",
        status: true,
        reason: "Connected",
        message: `Connected to PostgreSQL ${outcome.version}`,
      }
      : { type: "Ready", status: false, reason: outcome.reason, message: outcome.message },
    {
      now: new Date(now),
      ...(generation !== undefined ? { generation } : {}),
    },
  );
  const status: DBClusterStatus = {
    ...old,
    phase: outcome.ok ? "Connected" : "Failed",
    message: outcome.ok ? `Connected to PostgreSQL ${outcome.version}` : outcome.message,
    lastCheckTime: k8sTime(now),
    conditions,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  if (outcome.ok) {
    status.version = outcome.version;
    status.versionNum = outcome.versionNum;
  }
  return status;
}
