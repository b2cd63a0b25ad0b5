/**
 * A Database under `spec.managementPolicy: Observe`: the same plan as Manage, its
 * ensureDatabase and extensions steps played by a dry-run executor, so the drift is what Manage
 * would do. Nothing is sent; no finalizer is added; deletion drops nothing.
 */
import type { Database } from "../../crds/database.ts";
import { PgExecutor } from "../postgres/execute.ts";
import type { ServerPool } from "../postgres/pool.ts";
import { type Drift, observeDrift } from "../services/drift.ts";
import { ensureExtensions } from "./extensions.ts";
import type { DatabaseAction } from "./plan.ts";

/** Whether the Database only observes. */
export function observes(db: Database): boolean {
  return db.spec.managementPolicy === "Observe";
}

/** Observe keeps no finalizer and runs no cleanup: what remains of the plan to look at. */
export function observedActions(actions: readonly DatabaseAction[]): DatabaseAction[] {
  return actions.filter((a) => a.kind === "ensureDatabase" || a.kind === "ensureExtensions");
}

/** The drift of `db` against the server: the statements its plan would send. */
export function databaseDrift(
  actions: readonly DatabaseAction[],
  o: { pool: ServerPool; signal: AbortSignal },
): Promise<Drift> {
  return observeDrift(async ({ adopting, dry }) => {
    const exec = new PgExecutor(o.pool, { signal: o.signal, dryRun: dry });
    for (const a of actions) {
      if (a.kind === "ensureDatabase") {
        const spec = adopting
          ? { ...a.spec, forceAdopt: true, consent: { granted: true, how: "" } }
          : a.spec;
        await exec.ensureDatabase(spec);
      } else if (a.kind === "ensureExtensions") {
        if ((await exec.claimOf(a.database)) === undefined) continue;
        // The Manage step itself, against the dry-run executor: it collects what it would send.
        await ensureExtensions(exec, o.pool, {
          database: a.database,
          extensions: a.extensions,
          signal: o.signal,
        });
      }
    }
  });
}
