/**
 * What one backup run is given (the reconciler builds it, job.ts runs it, outcome.ts records
 * how it ended). A module of its own so job.ts and outcome.ts both depend on it, not on each
 * other.
 */
import type { Backup } from "../../crds/backup.ts";
import type { JobInputs } from "../services/backup_shared.ts";
import type { BackupTarget } from "./plan.ts";

/** Everything one backup run needs, decided before it starts. */
export interface BackupJob extends JobInputs {
  backup: Backup;
  target: BackupTarget;
  /** `--backup-storage-retry-for`: how long storage failures are retried. */
  storageRetryForMs: number;
  /** `--backup-gzip-workers`: gzip threads per backup (0: on the main thread). */
  gzipWorkers?: number;
  /** `--backup-stall-timeout`: a storage that owes a step this long fails the run. */
  stallTimeoutMs: number;
}

/** A job with the time its run started (for the storage retry window). */
export type RunningJob = BackupJob & { startedAt: number };
