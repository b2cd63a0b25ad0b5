/**
 * The list of controllers `dbtether run` starts, and the services they share (the DBCluster
 * resolver and the PostgreSQL connection pools). main.ts calls this once.
 */
import { type DBCluster, DBClusterKind } from "../crds/dbcluster.ts";
import { setupBackupController } from "./backup/reconcile.ts";
import { setupBackupScheduleController } from "./backup_schedule/reconcile.ts";
import { setupBackupStorageController } from "./backup_storage/reconcile.ts";
import { setupDatabaseController } from "./database/reconcile.ts";
import { setupDatabaseUserController } from "./database_user/reconcile.ts";
import { setupDBClusterController } from "./dbcluster/reconcile.ts";
import { ClusterResolver } from "./services/resolver.ts";
import { SecretReads } from "./services/secret_reads.ts";
import type { ControllerSettings, Services } from "./services/services.ts";
import { PoolRegistry } from "./postgres/registry.ts";
import { setupPostgresDatabaseController } from "./postgres_database/reconcile.ts";
import { setupRestoreController } from "./restore/reconcile.ts";
import { createBackupShared } from "./services/backup_shared.ts";
import type { ControllerDeps } from "./runtime/shared.ts";
import { SecretResource } from "./runtime/kube.ts";
import type { KubeObject } from "../crds/kind.ts";
import { type Database, DatabaseKind } from "../crds/database.ts";
import { type DatabaseUser, DatabaseUserKind } from "../crds/database_user.ts";
import { databaseEntries } from "./database_user/spec.ts";
import { DriftScanner } from "./services/drift_scan.ts";

export interface RegisterContext {
  config: Readonly<ControllerSettings>;
  env: Record<string, string>;
}

/** Registers every controller; returns a function that releases shared resources at exit. */
export function registerControllers(
  deps: ControllerDeps,
  ctx: RegisterContext,
): () => Promise<void> {
  const pools = new PoolRegistry({
    logger: deps.logger.with({ component: "postgres" }),
    fence: deps.fence,
    applicationName: `dbtether@${ctx.config.identity}`,
    // Shorter than the time between our fence closing and a successor's start (slot.ts).
    ...(ctx.config.leaderElect
      ? {
        sessionIdleLimitMs: Math.floor(
          (ctx.config.leaseDurationMs - ctx.config.renewDeadlineMs) * 0.75,
        ),
      }
      : {}),
  });
  const clusters = deps.informers.for<DBCluster>(DBClusterKind);
  // The same metadata-only Secret informer the DBCluster controller watches its Secrets with.
  const secrets = deps.informers.for<KubeObject<unknown, unknown>>(SecretResource, {
    metadataOnly: true,
  });
  const secretReads = new SecretReads({ client: deps.client, informer: secrets });
  const resolver = new ClusterResolver({
    client: deps.client,
    clusters,
    pools,
    env: ctx.env,
    secrets,
    reads: secretReads,
    iamTokenRefreshMs: ctx.config.iamTokenRefreshMs,
  });
  const services: Services = { resolver, pools, secretReads, config: ctx.config, env: ctx.env };

  setupDBClusterController(deps, { resolver, defaultIntervalMs: ctx.config.healthCheckIntervalMs });
  // One line per controller; each gets the runtime (deps) and the shared services.
  const databaseController = setupDatabaseController(deps, services);
  const userController = setupDatabaseUserController(deps, services);
  addDriftScan(deps, { resolver, clusters, intervalMs: ctx.config.driftScanIntervalMs }, {
    database: (k) => databaseController.enqueue(k),
    user: (k) => userController.enqueue(k),
  });
  if (ctx.config.postgresDatabase.enabled) setupPostgresDatabaseController(deps, services);
  setupBackupStorageController(deps, services);
  // Restores count against the same job limits as backups: one limiter, runner and keyring.
  const jobs = createBackupShared(deps, ctx.config);
  setupBackupController(deps, { ...services, jobs });
  setupRestoreController(deps, { ...services, jobs });
  setupBackupScheduleController(deps, { ...services, jobs });

  return () => pools.close();
}

/** The drift scan as a leader-only task, queueing into the Database and DatabaseUser controllers. */
function addDriftScan(
  deps: ControllerDeps,
  o: { resolver: ClusterResolver; clusters: { list(): DBCluster[] }; intervalMs: number },
  enqueue: { database: (key: string) => void; user: (key: string) => void },
): void {
  const databases = deps.informers.for<Database>(DatabaseKind);
  const users = deps.informers.for<DatabaseUser>(DatabaseUserKind);
  const scanner = new DriftScanner({
    resolver: o.resolver,
    clusters: o.clusters,
    databases,
    users,
    clusterOfUser: (u) => {
      const e = databaseEntries(u)[0];
      return e ? databases.get(`${e.namespace}/${e.name}`)?.spec.clusterRef.name : undefined;
    },
    enqueueDatabase: enqueue.database,
    enqueueUser: enqueue.user,
    clock: deps.clock,
    logger: deps.logger.with({ component: "drift-scan" }),
    metrics: deps.metrics,
    intervalMs: o.intervalMs,
  });
  deps.manager.addLeaderRunnable("drift-scan", (signal) => scanner.run(signal));
}
