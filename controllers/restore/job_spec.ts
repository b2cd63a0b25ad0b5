/**
 * What one restore run is given (the reconciler builds it; job.ts runs it; outcome.ts records
 * how it ended), and the server names it works with. Its own module so job.ts and outcome.ts
 * depend on it rather than on each other.
 */
import type { Database } from "../../crds/database.ts";
import type { Restore } from "../../crds/restore.ts";
import { databaseRoles } from "../postgres/names.ts";
import type { DatabaseSpec } from "../postgres/plan.ts";
import { type RestorePlacement, restorePlacement } from "../postgres/restore_target.ts";
import type { JobInputs } from "../services/backup_shared.ts";
import type { RestoreTarget } from "./plan.ts";

const FORCE_ADOPT_ANNOTATION = "dbtether.io/force-adopt";

/** Everything one restore run needs, decided before it starts. */
export interface RestoreJob extends JobInputs {
  restore: Restore;
  target: RestoreTarget;
  database: Database;
}

/** What a finished restore read: recorded in status, metrics and the Completed Event. */
export interface RestoreOutcome {
  sha256: string;
  storedBytes: number;
  durationMs: number;
}

/** The postgres module's view of a Database resource. */
export function databaseSpecOf(db: Database): DatabaseSpec {
  return {
    database: db.status!.databaseName!,
    marker: { namespace: db.metadata.namespace ?? "", name: db.metadata.name },
    revokePublicConnect: db.spec.revokePublicConnect ?? true,
    forceAdopt: db.metadata.annotations?.[FORCE_ADOPT_ANNOTATION] === "true",
  };
}

/** The role restored objects belong to: the one the Database reports, else its derived name. */
export function ownerRole(db: Database): string {
  return db.status?.ownerRole ?? databaseRoles(db.status!.databaseName!).owner;
}

/**
 * The server names of a Restore (scratch database, login role, ...). From status when the
 * target Database is gone (cleanup), so only `databaseName` is needed.
 */
export function placementOf(
  r: Restore,
  o: { databaseName: string; database?: Database | undefined },
): RestorePlacement {
  const ns = r.metadata.namespace ?? "";
  return restorePlacement({
    target: o.databaseName,
    owner: o.database?.status?.ownerRole ?? databaseRoles(o.databaseName).owner,
    restore: { namespace: ns, name: r.metadata.name, uid: r.metadata.uid ?? "" },
    database: { namespace: ns, name: r.spec.target.databaseRef.name },
  });
}
