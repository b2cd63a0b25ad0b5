/** Readiness of the objects Backup and Restore depend on, read from their status. Pure. */
import type { Database } from "../../crds/database.ts";

/** Whether a Database is usable: Ready, with its PostgreSQL name known. */
export function databaseReady(d: Database): boolean {
  const ready = d.status?.conditions?.find((c) => c.type === "Ready")?.status === "True" ||
    d.status?.phase === "Ready";
  return ready && !!d.status?.databaseName && !d.metadata.deletionTimestamp;
}
