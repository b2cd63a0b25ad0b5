/**
 * spec.isolation, the imperative part: observe every database and role of the server, plan
 * (postgres/plan_isolation.ts), restrict the databases the plan allows (one transaction each),
 * and report the rest. Run by the DBCluster controller after each successful health check; on
 * a converged server it sends catalog queries only.
 */
import type { IsolationMode } from "../../crds/dbcluster.ts";
import { errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { observeIsolation } from "../postgres/catalog.ts";
import { mapPgError, PgExecutor } from "../postgres/execute.ts";
import { type IsolationBlockReason, planIsolation } from "../postgres/plan_isolation.ts";
import type { ServerPool } from "../postgres/pool.ts";

/** Reasons of the Isolated condition, declared once. */
export type IsolationReason =
  | "Restricted"
  | "IsolationKept"
  | IsolationBlockReason
  | "RestrictFailed";

/** A database dbtether does not manage that PUBLIC can still connect to, and why. */
export interface OpenDatabase {
  database: string;
  reason: Exclude<IsolationReason, "Restricted">;
  message: string;
}

/** What one isolation pass found and did. */
export type IsolationOutcome =
  | {
    mode: IsolationMode;
    /** Databases dbtether does not manage that PUBLIC cannot connect to (after this pass). */
    closed: string[];
    /** Restricted by this pass, with the roles that got CONNECT of their own. */
    restricted: { database: string; grantees: string[] }[];
    open: OpenDatabase[];
    failure?: undefined;
  }
  | { mode: IsolationMode; failure: string };

/** Runs one isolation pass on `pool`'s server. Never throws: failures are in the outcome. */
export async function enforceIsolation(
  pool: ServerPool,
  o: { mode: IsolationMode; logger: Logger; signal?: AbortSignal },
): Promise<IsolationOutcome> {
  const runOpts = o.signal === undefined ? {} : { signal: o.signal };
  let plan;
  try {
    plan = planIsolation(await pool.run(observeIsolation, runOpts));
  } catch (e) {
    const mapped = mapPgError(e, { server: pool.endpoint });
    return {
      mode: o.mode,
      failure: `Cannot check the server's databases: ${errorMessage(mapped)}`,
    };
  }
  const open: OpenDatabase[] = plan.blocked.map((b) => ({
    database: b.database,
    reason: o.mode === "Keep" ? "IsolationKept" : b.reason,
    message: b.message,
  }));
  const closed = [...plan.closed];
  const restricted: { database: string; grantees: string[] }[] = [];
  if (o.mode === "Keep") {
    for (const r of plan.restrict) {
      open.push({ database: r.database, reason: "IsolationKept", message: "" });
    }
  } else {
    const exec = new PgExecutor(pool, { logger: o.logger, ...runOpts });
    for (const r of plan.restrict) {
      try {
        await exec.apply([r.statement]);
        closed.push(r.database);
        restricted.push({ database: r.database, grantees: r.grantees });
      } catch (e) {
        open.push({
          database: r.database,
          reason: "RestrictFailed",
          message: `Cannot restrict CONNECT on database ${JSON.stringify(r.database)}: ${
            driverMessage(e)
          }`,
        });
      }
    }
  }
  if (restricted.length) await verify(pool, runOpts, { closed, restricted, open });
  const byName = (a: { database: string }, b: { database: string }) =>
    a.database < b.database ? -1 : a.database > b.database ? 1 : 0;
  return { mode: o.mode, closed: closed.sort(), restricted, open: open.sort(byName) };
}

// The executor wraps driver errors as "Cannot run <statement>: <detail>"; the statement lists
// every grantee, so only the detail goes into status.
function driverMessage(e: unknown): string {
  return e instanceof Error && e.cause instanceof Error ? e.cause.message : errorMessage(e);
}

/**
 * REVOKE without the needed privilege is a WARNING, not an error, in PostgreSQL: read the ACLs
 * again and report any database just restricted where PUBLIC can still connect.
 */
async function verify(
  pool: ServerPool,
  runOpts: { signal?: AbortSignal },
  o: { closed: string[]; restricted: { database: string }[]; open: OpenDatabase[] },
): Promise<void> {
  let still: Set<string>;
  try {
    const plan = planIsolation(await pool.run(observeIsolation, runOpts));
    still = new Set([...plan.restrict, ...plan.blocked].map((d) => d.database));
  } catch {
    return; // the next check reads them again
  }
  for (const r of o.restricted.filter((x) => still.has(x.database))) {
    o.closed.splice(o.closed.indexOf(r.database), 1);
    o.restricted.splice(o.restricted.indexOf(r), 1);
    o.open.push({
      database: r.database,
      reason: "RestrictFailed",
      message: `Cannot restrict CONNECT on database ${JSON.stringify(r.database)}: PUBLIC ` +
        "can still connect after the REVOKE (the server gave no error)",
    });
  }
}
