/**
 * The Database controller: observe (the object, its DBCluster) → plan (plan.ts) → act (the
 * idempotent calls of the postgres module) → status (status.ts, written only when it changed).
 * Databases are re-queued when their DBCluster changes in a way that matters (watches.ts).
 */
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type DatabaseUser, DatabaseUserKind } from "../../crds/database_user.ts";
import type { Services } from "../services/services.ts";
import type { Controller, ReconcileContext, Result } from "../runtime/controller.ts";
import { done } from "../runtime/controller.ts";
import { RetryableError, TerminalError } from "../../lib/errors.ts";
import { addFinalizer, removeFinalizer, updateStatus } from "../runtime/objects.ts";
import { type Reconciler, startController } from "../runtime/reconciler.ts";
import type { ControllerDeps, InformerSet } from "../runtime/shared.ts";
import { PgExecutor } from "../postgres/execute.ts";
import type { ServerPool } from "../postgres/pool.ts";
import { adoptionConsent } from "../services/adoption.ts";
import type { ResolvedCluster } from "../services/resolver.ts";
import {
  type Blocked,
  type ClusterState,
  type DatabaseAction,
  databaseNameOf,
  type DatabasePlan,
  FINALIZER,
  optionConsentOf,
  planDatabase,
  wantsAdoption,
} from "./plan.ts";
import { computeDatabaseStatus, type DatabaseOutcome, statusEvents } from "./status.ts";
import { databaseDrift, observedActions, observes } from "./observe.ts";
import { releaseObserved } from "../services/drift.ts";
import { pauseGate } from "../runtime/pause.ts";
import { databaseWatches } from "./watches.ts";
import { ensureExtensions } from "./extensions.ts";
import { type DatabaseFailure, databaseFailure } from "./reasons.ts";

export { databasesOfCluster } from "./watches.ts";

/** Refusals of dropDatabase that mean "not this resource's database". */
const NOT_OURS: ReadonlySet<string> = new Set([
  "DatabaseClaimedByOther",
  "DatabaseExistsUnmanaged",
]);

/** What one action works on: the latest object, the server (when resolved), the context. */
interface Step {
  db: Database;
  pool: ServerPool | undefined;
  ctx: ReconcileContext;
  outcome: DatabaseOutcome;
}

/** Reconciles one Database: resolve its DBCluster, plan, run the actions, write status. */
export class DatabaseReconciler implements Reconciler {
  readonly #deps: ControllerDeps;
  readonly #services: Services;
  readonly #databases: InformerSet<Database>;
  readonly #users: InformerSet<DatabaseUser>;

  constructor(deps: ControllerDeps, services: Services) {
    this.#deps = deps;
    this.#services = services;
    this.#databases = deps.informers.for<Database>(DatabaseKind);
    this.#users = deps.informers.for<DatabaseUser>(DatabaseUserKind);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<Result> {
    const db = this.#databases.get(key);
    if (!db) return done;
    const gate = await pauseGate(this.#deps, {
      resource: DatabaseKind,
      object: db,
      signal: ctx.signal,
    });
    if (gate.paused) return done;
    const resolved = await this.#resolve(db, ctx);
    const users = (ns: string, name: string) => this.#users.get(`${ns}/${name}`);
    const plan = planDatabase(db, await this.#clusterState(db, resolved, ctx), { users });
    const outcome: DatabaseOutcome = { ensured: false, pause: gate.state };
    if (observes(db)) return await this.#observe(db, { plan, resolved, outcome, ctx });
    let failure: Blocked | undefined = plan.blocked;
    let current = db;
    try {
      for (const action of plan.actions) {
        const pool = "pool" in resolved ? resolved.pool : undefined;
        const next = await this.#act(action, { db: current, pool, ctx, outcome });
        if (next === "gone") return done;
        current = next;
      }
      // CREATE DATABASE ... TEMPLATE refuses while anyone is connected: keep no idle session.
      if (db.spec.isTemplate && "pool" in resolved) {
        await resolved.pool.closeIdle([databaseNameOf(db)]);
      }
    } catch (e) {
      failure = databaseFailure(e);
    }
    if (failure) outcome.failure = { reason: failure.reason, message: failure.message };
    const written = await this.#writeStatus(db, { current, outcome, ctx });
    if (failure?.terminal) throw new TerminalError(failure.reason, failure.message);
    if (failure) throw new RetryableError(failure.reason, failure.message);
    if (outcome.extensions?.failed.length) {
      // Retried with capped backoff: an admin may allow the extension later.
      throw new RetryableError("ExtensionFailed", written?.message ?? "Extension failed");
    }
    return done;
  }

  /**
   * Observe: the drift in InSync, and no side effect; a deleted Database only loses the
   * finalizer an earlier Manage added, and keeps everything on the server.
   */
  async #observe(
    db: Database,
    o: {
      plan: DatabasePlan;
      resolved: ResolvedCluster | DatabaseFailure;
      outcome: DatabaseOutcome;
      ctx: ReconcileContext;
    },
  ): Promise<Result> {
    const { outcome, ctx } = o;
    if (db.metadata.deletionTimestamp) {
      await releaseObserved(this.#deps, {
        resource: DatabaseKind,
        object: db,
        finalizer: FINALIZER,
        kept: "the database was neither dropped nor released",
        signal: ctx.signal,
      });
      return done;
    }
    let failure: Blocked | undefined = o.plan.blocked;
    if (!failure && "pool" in o.resolved) {
      try {
        outcome.drift = await databaseDrift(observedActions(o.plan.actions), {
          pool: o.resolved.pool,
          signal: ctx.signal,
        });
      } catch (e) {
        failure = databaseFailure(e);
      }
    }
    if (failure) outcome.failure = { reason: failure.reason, message: failure.message };
    await this.#writeStatus(db, { current: db, outcome, ctx });
    if (failure?.terminal) throw new TerminalError(failure.reason, failure.message);
    if (failure) throw new RetryableError(failure.reason, failure.message);
    return done;
  }

  /** Writes the status when it changed, and an Event when Ready or InSync changed. */
  async #writeStatus(
    db: Database,
    o: { current: Database; outcome: DatabaseOutcome; ctx: ReconcileContext },
  ): Promise<Database["status"] | undefined> {
    const { client, clock, recorder } = this.#deps;
    let written: Database["status"] | undefined;
    await updateStatus(client, {
      resource: DatabaseKind,
      object: o.current,
      compute: (latest) => {
        written = computeDatabaseStatus(latest, o.outcome, { now: new Date(clock.now()) });
        return written;
      },
      signal: o.ctx.signal,
    });
    for (const event of written ? statusEvents(db.status, written) : []) {
      recorder.emit(o.current, event.type, event.reason, event.message);
    }
    return written;
  }

  /** The DBCluster, or why it cannot be used now (a retryable refusal of the resolver). */
  async #resolve(
    db: Database,
    ctx: ReconcileContext,
  ): Promise<ResolvedCluster | DatabaseFailure> {
    try {
      return await this.#services.resolver.resolve(db.spec.clusterRef.name, {
        namespace: db.metadata.namespace ?? "",
        signal: ctx.signal,
      });
    } catch (e) {
      if (e instanceof RetryableError) return databaseFailure(e);
      throw e;
    }
  }

  async #clusterState(
    db: Database,
    resolved: ResolvedCluster | DatabaseFailure,
    ctx: ReconcileContext,
  ): Promise<ClusterState> {
    if ("reason" in resolved) {
      return { kind: "unavailable", reason: resolved.reason, message: resolved.message };
    }
    const options = optionConsentOf(resolved.cluster);
    const ready = { kind: "ready", adminRole: resolved.adminRole, options } as const;
    if (!wantsAdoption(db)) return ready;
    const consent = await adoptionConsent(this.#deps.client, {
      cluster: resolved.cluster,
      namespace: db.metadata.namespace ?? "",
      signal: ctx.signal,
    });
    return { ...ready, consent };
  }

  async #act(action: DatabaseAction, o: Step): Promise<Database | "gone"> {
    const { client } = this.#deps;
    const { db, ctx } = o;
    switch (action.kind) {
      case "addFinalizer":
        return await addFinalizer(client, {
          resource: DatabaseKind,
          object: db,
          finalizer: FINALIZER,
          signal: ctx.signal,
        });
      case "ensureDatabase": {
        const result = await executor(action, o).ensureDatabase(action.spec);
        o.outcome.differences = result.differences;
        if (result.waitingSchemas) o.outcome.waitingSchemas = result.waitingSchemas;
        o.outcome.ensured = true;
        return db;
      }
      case "ensureExtensions": {
        const result = await ensureExtensions(executor(action, o), o.pool!, {
          database: action.database,
          extensions: action.extensions,
          signal: ctx.signal,
        });
        o.outcome.extensions = result;
        o.outcome.differences = [...o.outcome.differences ?? [], ...result.differences];
        return db;
      }
      case "releaseDatabase":
        if ((await executor(action, o).releaseDatabase(action)).changed) {
          const what = `Released database ${JSON.stringify(action.database)}; it is kept`;
          this.#deps.recorder.emit(db, "Normal", "Released", what);
        }
        return db;
      case "dropDatabase":
        await this.#drop(action, o);
        return db;
      case "removeFinalizer":
        return await this.#finalize(action, o);
    }
  }

  async #drop(action: Extract<DatabaseAction, { kind: "dropDatabase" }>, o: Step): Promise<void> {
    const { recorder } = this.#deps;
    try {
      if ((await executor(action, o).dropDatabase(action)).changed) {
        const what = `Dropped database ${JSON.stringify(action.database)}`;
        recorder.emit(o.db, "Normal", "Dropped", what);
      }
    } catch (e) {
      // The resource never had (or lost) the claim: the database is someone else's and
      // stays, and the resource may go.
      if (!(e instanceof TerminalError) || !NOT_OURS.has(e.reason)) throw e;
      recorder.emit(o.db, "Warning", "NotDropped", `${e.message}; it was left as it is`);
    }
  }

  async #finalize(
    action: Extract<DatabaseAction, { kind: "removeFinalizer" }>,
    o: Step,
  ): Promise<"gone"> {
    if (action.skippedCleanup) {
      const why = `Nothing was cleaned up in PostgreSQL: ${action.skippedCleanup.message}`;
      this.#deps.recorder.emit(o.db, "Warning", "CleanupSkipped", why);
    }
    await removeFinalizer(this.#deps.client, {
      resource: DatabaseKind,
      object: o.db,
      finalizer: FINALIZER,
      signal: o.ctx.signal,
    });
    return "gone";
  }
}

/** Starts the Database controller. */
export function setupDatabaseController(deps: ControllerDeps, services: Services): Controller {
  return startController(deps, {
    name: "database",
    reconciler: new DatabaseReconciler(deps, services),
    watches: databaseWatches(deps),
  });
}

/** The executor for an action that needs the server; the planner only plans those when ready. */
function executor(action: DatabaseAction, o: Step): PgExecutor {
  if (!o.pool) throw new Error(`Cannot run ${action.kind}: no connection to the server`);
  return new PgExecutor(o.pool, { logger: o.ctx.logger, signal: o.ctx.signal });
}
