/**
 * A Database under `spec.managementPolicy: Observe`: the same plan as Manage, its
 * ensureDatabase played by a dry-run executor and the extensions only looked up, so the drift
 * is what Manage would do. Nothing is sent; no finalizer is added; deletion drops nothing.
 */
import type { Database } from "../../crds/database.ts";
import { observeDatabase } from "../postgres/catalog.ts";
import { mapPgError, PgExecutor } from "../postgres/execute.ts";
import { databaseRoles } from "../postgres/names.ts";
import type { ServerPool } from "../postgres/pool.ts";
import { ident } from "../postgres/quote.ts";
import { createExtension } from "../postgres/statements.ts";
import { type Drift, observeDrift } from "../services/drift.ts";
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
        const snap = await o.pool.run(
          (sql) => observeDatabase(sql, databaseRoles(a.database)),
          { database: a.database, signal: o.signal },
        ).catch((e) => {
          throw mapPgError(e, { server: o.pool.endpoint });
        });
        for (const x of a.extensions) {
          if (!snap.extensions.has(x)) dry.statements.push(createExtension(ident(x), a.database));
        }
      }
    }
  });
}
