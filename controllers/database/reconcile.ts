/**
 * The Database controller: observe (the object, its DBCluster) → plan (plan.ts) → act (the
 * idempotent calls of the postgres module) → status (status.ts, written only when it changed).
 * Databases are re-queued when their DBCluster changes in a way that matters.
 */
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import type { Services } from "../services/services.ts";
import { clusterChangeMatters } from "../services/cluster_changes.ts";
import {
  type Controller,
  done,
  type ReconcileContext,
  type Result,
} from "../runtime/controller.ts";
import { errorMessage, RetryableError, TerminalError } from "../../lib/errors.ts";
import { objectKey } from "../runtime/informer.ts";
import { addFinalizer, removeFinalizer, updateStatus } from "../runtime/objects.ts";
import { addController, type ControllerDeps } from "../runtime/shared.ts";
import { observeDatabase } from "../postgres/catalog.ts";
import { mapPgError, PgExecutor } from "../postgres/execute.ts";
import { databaseRoles } from "../postgres/names.ts";
import type { ServerPool } from "../postgres/pool.ts";
import { ident } from "../postgres/quote.ts";
import { createExtension } from "../postgres/statements.ts";
import { adoptionConsent } from "../services/adoption.ts";
import type { ResolvedCluster } from "../services/resolver.ts";
import {
  type Blocked,
  type ClusterState,
  type DatabaseAction,
  FINALIZER,
  planDatabase,
  wantsAdoption,
} from "./plan.ts";
import { computeDatabaseStatus, type DatabaseOutcome, readyTransition } from "./status.ts";

/** Refusals of dropDatabase that mean "not this resource's database". */
const NOT_OURS: ReadonlySet<string> = new Set([
  "DatabaseClaimedByOther",
  "DatabaseExistsUnmanaged",
]);

/** Keys of the Databases that use DBCluster `name`, from the informer cache. */
export function databasesOfCluster(databases: readonly Database[], name: string): string[] {
  return databases.filter((d) => d.spec.clusterRef.name === name).map(objectKey);
}

export function setupDatabaseController(deps: ControllerDeps, services: Services): Controller {
  const { client, clock, recorder, informers } = deps;
  const databases = informers.for<Database>(DatabaseKind);
  const clusters = informers.for<DBCluster>(DBClusterKind);

  const reconcile = async (key: string, ctx: ReconcileContext): Promise<Result> => {
    const db = databases.get(key);
    if (!db) return done;
    const resolved = await resolve(db);
    const cluster: ClusterState = "reason" in resolved
      ? { kind: "unavailable", reason: resolved.reason, message: resolved.message }
      : {
        kind: "ready",
        adminRole: resolved.adminRole,
        ...(wantsAdoption(db)
          ? {
            consent: await adoptionConsent(client, {
              cluster: resolved.cluster,
              namespace: db.metadata.namespace ?? "",
            }),
          }
          : {}),
      };
    const plan = planDatabase(db, cluster);
    const outcome: DatabaseOutcome = { ensured: false };
    let failure: Blocked | undefined = plan.blocked;
    let current = db;
    try {
      for (const action of plan.actions) {
        const pool = "pool" in resolved ? resolved.pool : undefined;
        const next = await act(action, { db: current, pool, ctx, outcome });
        if (next === "gone") return done;
        current = next;
      }
    } catch (e) {
      failure = {
        reason: e instanceof RetryableError || e instanceof TerminalError ? e.reason : "Error",
        message: errorMessage(e),
        terminal: e instanceof TerminalError,
      };
    }
    if (failure) outcome.failure = { reason: failure.reason, message: failure.message };
    let written: Database["status"] | undefined;
    await updateStatus(client, {
      resource: DatabaseKind,
      object: current,
      compute: (latest) => {
        written = computeDatabaseStatus(latest, outcome, { now: new Date(clock.now()) });
        return written;
      },
    });
    const event = written && readyTransition(db.status, written);
    if (event) recorder.emit(current, event.type, event.reason, event.message);
    if (failure?.terminal) throw new TerminalError(failure.reason, failure.message);
    if (failure) throw new RetryableError(failure.reason, failure.message);
    const extFailed = outcome.extensions?.failed ?? [];
    if (extFailed.length) {
      // Retried with capped backoff: an admin may allow the extension later.
      throw new RetryableError("ExtensionFailed", written?.message ?? "Extension failed");
    }
    return done;
  };

  const resolve = async (
    db: Database,
  ): Promise<ResolvedCluster | { reason: string; message: string }> => {
    try {
      return await services.resolver.resolve(db.spec.clusterRef.name, {
        namespace: db.metadata.namespace ?? "",
      });
    } catch (e) {
      if (e instanceof RetryableError) return { reason: e.reason, message: e.message };
      throw e;
    }
  };

  const act = async (
    action: DatabaseAction,
    o: {
      db: Database;
      pool: ServerPool | undefined;
      ctx: ReconcileContext;
      outcome: DatabaseOutcome;
    },
  ): Promise<Database | "gone"> => {
    const { db, pool, ctx, outcome } = o;
    const exec = () => {
      if (!pool) throw new Error(`Cannot run ${action.kind}: no connection to the server`);
      return new PgExecutor(pool, { logger: ctx.logger, signal: ctx.signal });
    };
    switch (action.kind) {
      case "addFinalizer":
        return await addFinalizer(client, {
          resource: DatabaseKind,
          object: db,
          finalizer: FINALIZER,
        }) as Database;
      case "ensureDatabase":
        await exec().ensureDatabase(action.spec);
        outcome.ensured = true;
        return db;
      case "ensureExtensions":
        outcome.extensions = await ensureExtensions(exec(), pool!, {
          database: action.database,
          extensions: action.extensions,
          signal: ctx.signal,
        });
        return db;
      case "releaseDatabase":
        if ((await exec().releaseDatabase(action)).changed) {
          recorder.emit(
            db,
            "Normal",
            "Released",
            `Released database ${JSON.stringify(action.database)}; it is kept`,
          );
        }
        return db;
      case "dropDatabase":
        try {
          if ((await exec().dropDatabase(action)).changed) {
            recorder.emit(
              db,
              "Normal",
              "Dropped",
              `Dropped database ${JSON.stringify(action.database)}`,
            );
          }
        } catch (e) {
          // The resource never had (or lost) the claim: the database is someone else's and
          // stays, and the resource may go.
          if (!(e instanceof TerminalError) || !NOT_OURS.has(e.reason)) throw e;
          recorder.emit(db, "Warning", "NotDropped", `${e.message}; it was left as it is`);
        }
        return db;
      case "removeFinalizer":
        if (action.skippedCleanup) {
          recorder.emit(
            db,
            "Warning",
            "CleanupSkipped",
            `Nothing was cleaned up in PostgreSQL: ${action.skippedCleanup.message}`,
          );
        }
        await removeFinalizer(client, { resource: DatabaseKind, object: db, finalizer: FINALIZER });
        return "gone";
    }
  };

  const controller = addController(deps, "database", reconcile);
  controller.watch(databases);
  controller.watch(
    clusters,
    (c, old, deleted) =>
      deleted || clusterChangeMatters(c, old)
        ? databasesOfCluster(databases.list(), c.metadata.name)
        : [],
  );
  return controller;
}

/**
 * CREATE EXTENSION for each requested extension that is missing, one at a time, so that one the
 * server refuses (not available, not trusted for a non-superuser) does not hide the others.
 */
async function ensureExtensions(
  exec: PgExecutor,
  pool: ServerPool,
  o: { database: string; extensions: readonly string[]; signal: AbortSignal },
): Promise<NonNullable<DatabaseOutcome["extensions"]>> {
  const snap = await pool.run(
    (sql) => observeDatabase(sql, databaseRoles(o.database)),
    { database: o.database, signal: o.signal },
  ).catch((e) => {
    throw mapPgError(e, { server: pool.endpoint });
  });
  const present: string[] = [];
  const failed: { name: string; message: string }[] = [];
  for (const name of o.extensions) {
    if (snap.extensions.has(name)) {
      present.push(name);
      continue;
    }
    try {
      await exec.apply([createExtension(ident(name), o.database)]);
      present.push(name);
    } catch (e) {
      if (!(e instanceof RetryableError) || e.reason === "ClusterUnreachable") throw e;
      const cause = e.cause instanceof Error ? e.cause.message : e.message;
      failed.push({ name, message: cause });
    }
  }
  return { present, failed };
}
