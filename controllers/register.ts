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
import type { ControllerSettings, Services } from "./services/services.ts";
import { PoolRegistry } from "./postgres/registry.ts";
import { setupPostgresDatabaseController } from "./postgres_database/reconcile.ts";
import { setupRestoreController } from "./restore/reconcile.ts";
import { createBackupShared } from "./services/backup_shared.ts";
import type { ControllerDeps } from "./runtime/shared.ts";
import { SecretResource } from "./runtime/kube.ts";
import type { KubeObject } from "../crds/kind.ts";

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
  const resolver = new ClusterResolver({
    client: deps.client,
    clusters,
    pools,
    env: ctx.env,
    secrets,
  });
  const services: Services = { resolver, pools, config: ctx.config, env: ctx.env };

  setupDBClusterController(deps, { resolver, defaultIntervalMs: ctx.config.healthCheckIntervalMs });
  // One line per controller; each gets the runtime (deps) and the shared services.
  setupDatabaseController(deps, services);
  setupDatabaseUserController(deps, services);
  if (ctx.config.postgresDatabase.enabled) setupPostgresDatabaseController(deps, services);
  setupBackupStorageController(deps, services);
  // Restores count against the same job limits as backups: one limiter, runner and keyring.
  const jobs = createBackupShared(deps, ctx.config);
  setupBackupController(deps, { ...services, jobs });
  setupRestoreController(deps, { ...services, jobs });
  setupBackupScheduleController(deps, { ...services, jobs });

  return () => pools.close();
}
