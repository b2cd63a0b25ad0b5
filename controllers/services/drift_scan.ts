/**
 * The drift scan: once per `--drift-scan-interval`, one read of each server's role and database
 * names (two catalog queries per DBCluster, whatever the number of objects on it) finds the Ready
 * Databases whose database or roles and the Ready DatabaseUsers whose role were dropped by hand,
 * and queues only those for a reconcile. The per-object resync (`--resync-period`) catches the
 * rest (a revoked grant, a changed attribute) less often, because it costs a reconcile each.
 * Read-only: the scan itself never changes the server.
 */
import type { Database } from "../../crds/database.ts";
import type { DatabaseUser } from "../../crds/database_user.ts";
import type { Clock } from "../../lib/clock.ts";
import { errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { PgExecutor } from "../postgres/execute.ts";
import { databaseRoles } from "../postgres/names.ts";
import { isTrue } from "../runtime/conditions.ts";
import { objectKey } from "../runtime/informer.ts";
import type { Metrics } from "../runtime/metrics.ts";
import { databaseReady } from "./readiness.ts";
import type { ClusterResolver } from "./resolver.ts";

/** What one server holds now: every role and database name. */
export interface ServerNames {
  roles: ReadonlySet<string>;
  databases: ReadonlySet<string>;
}

/** Keys of the objects whose database or roles are missing from the server. */
export interface Drifted {
  databases: string[];
  users: string[];
}

/** The DBCluster a user's roles live on: that of its first Database (all share one). */
export type ClusterOfUser = (u: DatabaseUser) => string | undefined;

/**
 * Which Ready objects on `cluster` lost what they declare: a Database its database or one of its
 * four roles, a DatabaseUser its active role. Objects that are not Ready are left alone: they are
 * already being retried. Pure.
 */
export function drifted(
  cluster: string,
  names: ServerNames,
  o: {
    databases: readonly Database[];
    users: readonly DatabaseUser[];
    clusterOfUser: ClusterOfUser;
  },
): Drifted {
  const databases = o.databases.filter((d) => {
    if (d.spec.clusterRef.name !== cluster || !databaseReady(d)) return false;
    const name = d.status!.databaseName!;
    return !names.databases.has(name) ||
      Object.values(databaseRoles(name)).some((r) => !names.roles.has(r));
  }).map(objectKey);
  const users = o.users.filter((u) => {
    const role = u.status?.username;
    if (!role || u.metadata.deletionTimestamp || !isTrue(u.status?.conditions, "Ready")) {
      return false;
    }
    return o.clusterOfUser(u) === cluster && !names.roles.has(role);
  }).map(objectKey);
  return { databases, users };
}

export interface DriftScanOptions {
  resolver: ClusterResolver;
  clusters: { list(): { metadata: { name: string } }[] };
  databases: { list(): Database[] };
  users: { list(): DatabaseUser[] };
  clusterOfUser: ClusterOfUser;
  enqueueDatabase: (key: string) => void;
  enqueueUser: (key: string) => void;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  intervalMs: number;
}

/** Runs the scan while leading (a leader runnable); an unreachable server is skipped quietly. */
export class DriftScanner {
  readonly #o: DriftScanOptions;
  readonly #found;

  constructor(o: DriftScanOptions) {
    this.#o = o;
    this.#found = o.metrics.counter(
      "dbtether_drift_found_total",
      "Objects the drift scan found changed on the server and queued, by kind.",
      ["kind"],
    );
  }

  async run(signal: AbortSignal): Promise<void> {
    const { clock, intervalMs } = this.#o;
    if (!(intervalMs > 0)) return;
    while (!signal.aborted) {
      try {
        await clock.sleep(intervalMs, signal);
      } catch {
        return;
      }
      await this.scanAll(signal);
    }
  }

  /** One pass over every DBCluster that has a Ready Database. */
  async scanAll(signal: AbortSignal): Promise<void> {
    const used = new Set(
      this.#o.databases.list().filter(databaseReady).map((d) => d.spec.clusterRef.name),
    );
    for (const c of this.#o.clusters.list()) {
      if (signal.aborted) return;
      if (used.has(c.metadata.name)) await this.#scan(c.metadata.name, signal);
    }
  }

  async #scan(cluster: string, signal: AbortSignal): Promise<void> {
    const { logger } = this.#o;
    let names: ServerNames;
    try {
      const resolved = await this.#o.resolver.resolve(cluster, { signal });
      const exec = new PgExecutor(resolved.pool, { signal });
      const [roles, databases] = await exec.query(async (sql) => [
        await sql<{ n: string }[]>`SELECT rolname AS n FROM pg_roles`,
        await sql<{ n: string }[]>`SELECT datname AS n FROM pg_database`,
      ]);
      names = {
        roles: new Set(roles!.map((r) => r.n)),
        databases: new Set(databases!.map((r) => r.n)),
      };
    } catch (e) {
      // The DBCluster controller reports an unreachable server; the next scan tries again.
      logger.debug("Drift scan skipped a server", { cluster, error: errorMessage(e) });
      return;
    }
    const found = drifted(cluster, names, {
      databases: this.#o.databases.list(),
      users: this.#o.users.list(),
      clusterOfUser: this.#o.clusterOfUser,
    });
    for (const k of found.databases) this.#o.enqueueDatabase(k);
    for (const k of found.users) this.#o.enqueueUser(k);
    if (found.databases.length || found.users.length) {
      this.#found.inc({ kind: "Database" }, found.databases.length);
      this.#found.inc({ kind: "DatabaseUser" }, found.users.length);
      logger.info("Drift found on the server; reconciling", {
        cluster,
        databases: found.databases.length,
        users: found.users.length,
      });
    }
  }
}
