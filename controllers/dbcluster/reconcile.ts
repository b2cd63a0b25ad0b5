/**
 * The DBCluster controller: checks the connection on a schedule (spec.healthCheckInterval) and
 * at once when the DBCluster or its credentials Secret changes (watches.ts), and reports
 * Connected with the server version, or Failed with a specific reason. Pools are rebuilt when
 * credentials change. After each successful check it applies spec.isolation (isolation.ts) and
 * reports it in the Isolated condition, which never changes Ready. When another controller's
 * connect finds the server gone, or back, the check runs at once (onReachability below).
 */
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import type { KubeObject } from "../runtime/types.ts";
import type { Controller, ReconcileContext, Result } from "../runtime/controller.ts";
import { done, requeueAfter } from "../runtime/controller.ts";
import { RetryableError } from "../../lib/errors.ts";
import { checkFailure } from "./reasons.ts";
import { SecretResource } from "../runtime/kube.ts";
import { updateStatus } from "../runtime/objects.ts";
import { type Reconciler, startController } from "../runtime/reconciler.ts";
import type { ControllerDeps, InformerSet } from "../runtime/shared.ts";
import { mapPgError } from "../postgres/execute.ts";
import { enforceIsolation } from "./isolation.ts";
import type { ClusterResolver } from "../services/resolver.ts";
import { type Checked, checkEvents, checkInterval, planDBCluster } from "./plan.ts";
import { type CheckOutcome, clusterStatus, shortVersion } from "./status.ts";
import { dbclusterWatches } from "./watches.ts";

export interface DBClusterControllerOptions {
  resolver: ClusterResolver;
  /** Used when a DBCluster has no valid spec.healthCheckInterval. */
  defaultIntervalMs: number;
}

/** Checks one DBCluster's connection and isolation, and writes its status. */
export class DBClusterReconciler implements Reconciler {
  readonly #deps: ControllerDeps;
  readonly #o: DBClusterControllerOptions;
  readonly #clusters: InformerSet<DBCluster>;
  readonly #secrets: InformerSet<KubeObject<unknown, unknown>>;
  /** The inputs of each DBCluster's last successful check. */
  readonly #checked = new Map<string, Checked>();
  /** What the pools' last connects said of each DBCluster's server (reachability.ts). */
  readonly #reachable = new Map<string, boolean>();

  constructor(deps: ControllerDeps, opts: DBClusterControllerOptions) {
    this.#deps = deps;
    this.#o = opts;
    this.#clusters = deps.informers.for<DBCluster>(DBClusterKind);
    this.#secrets = deps.informers.for<KubeObject<unknown, unknown>>(SecretResource, {
      metadataOnly: true,
    });
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<Result> {
    const cluster = this.#clusters.get(key);
    if (!cluster) {
      this.#checked.delete(key);
      this.#reachable.delete(key);
      return done;
    }
    const { client, clock, recorder } = this.#deps;
    const intervalMs = checkInterval(cluster, this.#o.defaultIntervalMs);
    const now = clock.now();
    const action = planDBCluster(cluster, {
      last: this.#checked.get(key),
      secretVersion: this.#secretVersion(cluster),
      now,
      intervalMs,
      reachable: this.#reachable.get(key),
    });
    if (action.kind === "wait") return requeueAfter(action.afterMs);

    const outcome = await this.#check(cluster, ctx);
    this.#checked.set(key, { ...action.inputs, at: now });
    let written: DBCluster["status"] | undefined;
    await updateStatus(client, {
      resource: DBClusterKind,
      object: cluster,
      compute: (latest) => {
        written = clusterStatus(latest, outcome, clock.now());
        return written;
      },
      signal: ctx.signal,
    });
    for (const e of checkEvents({ before: cluster.status, written }, outcome)) {
      recorder.emit(cluster, e.type, e.reason, e.message);
    }
    if (outcome.ok) return requeueAfter(intervalMs);
    // Retry with capped backoff, but never wait longer than one health interval.
    this.#checked.delete(key);
    throw new RetryableError(outcome.reason, outcome.message);
  }

  /** Records what a pool's connect said of a DBCluster's server. */
  noteReachability(name: string, reachable: boolean): void {
    this.#reachable.set(name, reachable);
  }

  #secretVersion(c: DBCluster): string {
    const refs = [c.spec.credentialsSecretRef, c.spec.caSecretRef].filter((r) => r !== undefined);
    return refs.map((r) =>
      this.#secrets.get(`${r.namespace}/${r.name}`)?.metadata.resourceVersion ?? "-"
    ).join(",");
  }

  async #check(cluster: DBCluster, ctx: ReconcileContext): Promise<CheckOutcome> {
    try {
      const { pool, server } = await this.#o.resolver.resolve(cluster.metadata.name, {
        signal: ctx.signal,
      });
      const row = await pool.run(async (sql) => {
        const rows = await sql<{ v: string; n: string }[]>`
          select current_setting('server_version') as v, current_setting('server_version_num') as n`;
        return rows[0]!;
      }, { signal: ctx.signal }).catch((e) => {
        throw mapPgError(e, { server: `${server.host}:${server.port}` });
      });
      const isolation = await enforceIsolation(pool, {
        mode: cluster.spec.isolation ?? "Restrict",
        logger: ctx.logger,
        signal: ctx.signal,
      });
      return { ok: true, version: shortVersion(row.v), versionNum: Number(row.n), isolation };
    } catch (e) {
      const { reason, message } = checkFailure(e);
      return { ok: false, reason, message };
    }
  }
}

/** Starts the DBCluster controller; its backoff never exceeds the default health interval. */
export function setupDBClusterController(
  deps: ControllerDeps,
  opts: DBClusterControllerOptions,
): Controller {
  const reconciler = new DBClusterReconciler(deps, opts);
  const controller = startController(deps, {
    name: "dbcluster",
    reconciler,
    watches: dbclusterWatches(deps, opts.resolver),
    maxBackoffMs: opts.defaultIntervalMs,
  });
  // A Database's or a user's connect that finds the server gone (or back) checks it now: the
  // DBCluster's status does not wait for the health check (default every 5 minutes).
  opts.resolver.onReachability((name, reachable) => {
    reconciler.noteReachability(name, reachable);
    controller.enqueue(name);
  });
  return controller;
}
