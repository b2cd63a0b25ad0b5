/**
 * What the controllers share beyond the runtime: the settings they read, the DBCluster
 * resolver and the PostgreSQL pool registry. `register.ts` builds one of each per process;
 * each controller receives them at construction, never through a module-level singleton.
 */
import type { PoolRegistry } from "../postgres/registry.ts";
import type { ClusterResolver } from "./resolver.ts";
import type { SecretReads } from "./secret_reads.ts";

/** The flags the controllers read (config.ts's Config extends this). */
export interface ControllerSettings {
  /** This replica's name, in `application_name` and Events. */
  identity: string;
  leaderElect: boolean;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  healthCheckIntervalMs: number;
  /** How often each server's role and database names are read to find drift (0: never). */
  driftScanIntervalMs: number;
  maxConcurrentBackups: number;
  maxConcurrentBackupsPerCluster: number;
  /** At most this many backups and restores per BackupStorage (default: global − 1, ≥ 1). */
  maxConcurrentBackupsPerStorage?: number;
  /**
   * A storage call or upload that makes no progress for this long fails the run with
   * StorageStalled (`--backup-stall-timeout`).
   */
  backupStallTimeoutMs: number;
  /**
   * Backup: interrupted runs (restarts, crashes, leader changes) before it fails. Restore:
   * starts of one Restore before it fails.
   */
  backupMaxAttempts: number;
  /** How long a Backup's storage failures are retried (0: not at all). */
  backupStorageRetryForMs: number;
  /** Worker threads compressing one backup (0: compress on the main thread). */
  backupGzipWorkers: number;
  /** How long running dumps may continue after SIGTERM before they are aborted. */
  backupShutdownGraceMs: number;
  pgToolsDirs: string[];
  /** DBClusters with spec.authentication: a new token is signed this often. */
  iamTokenRefreshMs: number;
  /** The Secret whose keys sign backup manifests (created by the operator when missing). */
  backupSigningSecret: { namespace: string; name: string };
  /** PostgresDatabase (pg-db-operator compatibility). */
  postgresDatabase: {
    enabled: boolean;
    /** DBCluster to use; when absent, the libpq environment (PGHOST, ...) names the server. */
    cluster?: string;
    rotationIntervalMs?: number;
  };
}

/** One resolver, one pool registry, the settings and the process environment. */
export interface Services {
  resolver: ClusterResolver;
  pools: PoolRegistry;
  /**
   * Secrets read once per resourceVersion of the metadata informer of every Secret (the
   * resolver's and PostgresDatabase's, whose watches use that informer).
   */
  secretReads: SecretReads;
  config: Readonly<ControllerSettings>;
  /** The process environment (libpq variables, cloud credentials), read once by main.ts. */
  env: Record<string, string | undefined>;
}
