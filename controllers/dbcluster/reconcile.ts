/**
 * The DBCluster controller: checks the connection on a schedule (spec.healthCheckInterval) and
 * at once when the DBCluster or its credentials Secret changes, and reports Connected with the
 * server version, or Failed with a specific reason. Pools are rebuilt when credentials change.
 * After each successful check it applies spec.isolation (isolation.ts) and reports it in the
 * Isolated condition, which never changes Ready.
 */
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import type { KubeObject } from "../../crds/kind.ts";
import {
  type Controller,
  done,
  type ReconcileContext,
  requeueAfter,
  type Result,
} from "../runtime/controller.ts";
import { parseGoDuration } from "../../lib/duration.ts";
import { errorMessage, RetryableError } from "../../lib/errors.ts";
import { SecretResource } from "../runtime/kube.ts";
import { updateStatus } from "../runtime/objects.ts";
import { addController, type ControllerDeps } from "../runtime/shared.ts";
import { mapPgError } from "../postgres/execute.ts";
import { enforceIsolation } from "./isolation.ts";
import type { ClusterResolver } from "../services/resolver.ts";
import { type CheckOutcome, clusterStatus, isolationTransition, shortVersion } from "./status.ts";

export interface DBClusterControllerOptions {
  resolver: ClusterResolver;
  /** Used when a DBCluster has no valid spec.healthCheckInterval. */
  defaultIntervalMs: number;
}

/** What the last check was based on, so unchanged inputs inside the interval skip the check. */
interface Checked {
  generation: number | undefined;
  secretVersion: string;
  at: number;
}

export function setupDBClusterController(
  deps: ControllerDeps,
  opts: DBClusterControllerOptions,
): Controller {
  const { client, clock, recorder, informers } = deps;
  const clusters = informers.for<DBCluster>(DBClusterKind);
  // Secrets are watched as metadata only: we need to know they changed, not what they hold.
  const secrets = informers.for<KubeObject<unknown, unknown>>(SecretResource, {
    metadataOnly: true,
  });
  const checked = new Map<string, Checked>();

  const secretVersion = (c: DBCluster): string => {
    const refs = [c.spec.credentialsSecretRef, c.spec.caSecretRef].filter((r) => r !== undefined);
    return refs.map((r) => secrets.get(`${r.namespace}/${r.name}`)?.metadata.resourceVersion ?? "-")
      .join(",");
  };

  const reconcile = async (key: string, ctx: ReconcileContext): Promise<Result> => {
    const cluster = clusters.get(key);
    if (!cluster) {
      checked.delete(key);
      return done;
    }
    let interval = opts.defaultIntervalMs;
    try {
      interval =
        parseGoDuration(cluster.spec.healthCheckInterval ?? "", "spec.healthCheckInterval") ||
        interval;
    } catch { /* admission validates the pattern; fall back to the flag */ }
    const now = clock.now();
    const inputs = {
      generation: cluster.metadata.generation,
      secretVersion: secretVersion(cluster),
    };
    const last = checked.get(key);
    if (
      last && last.generation === inputs.generation &&
      last.secretVersion === inputs.secretVersion &&
      now - last.at < interval && cluster.status?.phase === "Connected"
    ) {
      return requeueAfter(interval - (now - last.at));
    }

    const outcome = await check(cluster, ctx);
    checked.set(key, { ...inputs, at: now });
    const before = cluster.status?.phase;
    let written: DBCluster["status"] | undefined;
    await updateStatus(client, {
      resource: DBClusterKind,
      object: cluster,
      compute: (latest) => {
        written = clusterStatus(latest, outcome, clock.now());
        return written;
      },
    });
    if (outcome.ok) {
      const iso = outcome.isolation;
      for (const r of iso && iso.failure === undefined ? iso.restricted : []) {
        recorder.emit(cluster, "Normal", "Restricted", restrictedMessage(r));
      }
      const change = written && isolationTransition(cluster.status, written);
      if (change) recorder.emit(cluster, change.type, change.reason, change.message);
      if (before !== "Connected") {
        recorder.emit(cluster, "Normal", "Connected", `Connected to PostgreSQL ${outcome.version}`);
      }
      return requeueAfter(interval);
    }
    if (before !== "Failed") recorder.emit(cluster, "Warning", outcome.reason, outcome.message);
    // Retry with capped backoff, but never wait longer than one health interval.
    checked.delete(key);
    throw new RetryableError(outcome.reason, outcome.message);
  };

  const check = async (cluster: DBCluster, ctx: ReconcileContext): Promise<CheckOutcome> => {
    try {
      const { pool, server } = await opts.resolver.resolve(cluster.metadata.name);
      const row = await pool.run(async (sql) => {
        const rows = await sql<{ v: string; n: string }[]>`
          select current_setting('server_version') as v, current_setting('server_version_num') as n`;
        return rows[0]!;
      }).catch((e) => {
        throw mapPgError(e, { server: `${server.host}:${server.port}` });
      });
      const isolation = await enforceIsolation(pool, {
        mode: cluster.spec.isolation ?? "Restrict",
        logger: ctx.logger,
        signal: ctx.signal,
      });
      return { ok: true, version: shortVersion(row.v), versionNum: Number(row.n), isolation };
    } catch (e) {
      const reason = e instanceof RetryableError ? e.reason : "CheckFailed";
      return { ok: false, reason, message: errorMessage(e) };
    }
  };

  const controller = addController(deps, "dbcluster", reconcile, {
    maxBackoffMs: opts.defaultIntervalMs,
  });
  controller.watch(clusters);
  secrets.addHandler((s) => {
    const ns = s.metadata.namespace;
    if (!ns) return;
    for (const name of opts.resolver.clustersUsingSecret(ns, s.metadata.name)) {
      controller.enqueue(name);
    }
  });
  return controller;
}

function restrictedMessage(r: { database: string; grantees: string[] }): string {
  const shown = r.grantees.slice(0, 20).map((g) => JSON.stringify(g)).join(", ");
  const more = r.grantees.length > 20 ? ` and ${r.grantees.length - 20} more` : "";
  const who = r.grantees.length
    ? `CONNECT for the ${r.grantees.length} login role(s) dbtether did not create: ${shown}${more}`
    : "nothing: every login role dbtether did not create had CONNECT of its own";
  return `Replaced PUBLIC's CONNECT on database ${JSON.stringify(r.database)} with ${who}`;
}
