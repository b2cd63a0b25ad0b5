/**
 * What one backup run is given (the reconciler builds it, job.ts runs it, outcome.ts records
 * how it ended). A module of its own so job.ts and outcome.ts both depend on it, not on each
 * other.
 */
import type { Backup } from "../../crds/backup.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import type { ResolvedCluster } from "../services/resolver.ts";
import type { BackupTarget } from "./plan.ts";

/** Everything one backup run needs, decided before it starts. */
export interface BackupJob {
  backup: Backup;
  target: BackupTarget;
  storage: BackupStorage;
  cluster: ResolvedCluster;
  toolDirs: string[] | undefined;
  env: Record<string, string | undefined>;
  /** `--backup-storage-retry-for`: how long storage failures are retried. */
  storageRetryForMs: number;
  /** `--backup-gzip-workers`: gzip threads per backup (0: on the main thread). */
  gzipWorkers?: number;
}

/** A job with the time its run started (for the storage retry window). */
export type RunningJob = BackupJob & { startedAt: number };
