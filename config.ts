/**
 * Flags and environment → one frozen Config for `dbtether run`. Pure: main.ts hands in the
 * arguments and the environment, and turns a ConfigError into a one-line message and exit 2.
 */
import { parseArgs } from "node:util";
import { parseAddress } from "./controllers/runtime/http.ts";
import type { LogFormat, LogLevel } from "./lib/log.ts";
import type { ControllerSettings } from "./controllers/services/services.ts";
import { refreshPeriodProblem } from "./controllers/postgres/iam.ts";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Every flag of `dbtether run`; what the controllers read is declared in ControllerSettings. */
export interface Config extends ControllerSettings {
  kubeconfig?: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  metricsAddress: string;
  healthAddress: string;
  leaderElectionId: string;
  leaderElectionNamespace: string;
  retryPeriodMs: number;
  workers: number;
  /** Namespaces to watch; empty means all. */
  namespaces: string[];
  gracefulShutdownMs: number;
  startupTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Every Database, DatabaseUser and PostgresDatabase is reconciled again this often; 0: never. */
  resyncPeriodMs: number;
}

export const RUN_HELP = `Usage: dbtether run [flags]

Runs every dbtether controller against a Kubernetes cluster.

The cluster is found in this order: --kubeconfig, $KUBECONFIG, ~/.kube/config, then the
in-cluster service account, so the same program runs in a pod and on a VM.

Flags:
  --kubeconfig PATH                      kubeconfig file to use
  --log-level debug|info|warn|error      (default info)
  --log-format json|text                 (default json; text is easier on terminals)
  --metrics-bind-address ADDR            Prometheus /metrics (default :8080; 0 disables)
  --health-probe-bind-address ADDR       /healthz and /readyz (default :8081; 0 disables)
  --leader-elect                         elect a leader through a Lease (for >1 replica)
  --leader-election-id NAME              Lease name (default dbtether-leader)
  --leader-election-namespace NS         Lease namespace (default: the pod's, else default)
  --lease-duration DUR                   (default 15s)
  --renew-deadline DUR                   (default 10s)
  --retry-period DUR                     (default 2s)
  --workers N                            concurrent reconciles per controller (default 2)
  --namespaces NS[,NS...]                watch only these namespaces (default: all)
  --graceful-shutdown-timeout DUR        time in-flight work gets on SIGTERM (default 30s)
  --startup-timeout DUR                  give up if the API is unreachable this long (default 30s)
  --backoff-base DUR / --backoff-max DUR retry backoff bounds (default 1s / 5m)
  --health-check-interval DUR            DBCluster health checks (default 5m)
  --drift-scan-interval DUR              read each server's role and database names this
                                         often and reconcile the Databases and DatabaseUsers
                                         whose database or role was dropped (default 5m; 0s:
                                         never)
  --resync-period DUR                    reconcile every Database, DatabaseUser and
                                         PostgresDatabase again this often, spread over the
                                         period, to repair any other change made on the
                                         server by hand (default 6h; 0s: only on changes and
                                         restarts)
  --max-concurrent-backups N             backups running at once (default 2)
  --max-concurrent-backups-per-cluster N (default 3)
  --max-concurrent-backups-per-storage N at most N of them per BackupStorage, so a storage
                                         that stops answering cannot take every slot
                                         (default: --max-concurrent-backups − 1, at least 1)
  --backup-gzip-workers N                threads compressing each backup, as independent gzip
                                         members (default 2; 0 compresses on the main thread)
  --backup-max-attempts N                runs of one Backup cut short by a shutdown, crash or
                                         leader change, and starts of one Restore, before it
                                         is Failed (default 3)
  --backup-storage-retry-for DUR         how long a Backup retries storage failures (storage
                                         unreachable, server errors), with backoff from 5s to
                                         1m, before it is Failed (default 10m; 0s: no retry)
  --backup-stall-timeout DUR             a storage that takes no bytes of an upload, or does
                                         not answer a request, for this long fails the run
                                         with StorageStalled, retried as storage failures are
                                         (default 60s)
  --backup-shutdown-grace DUR            how long a running backup or restore may continue
                                         after SIGTERM before it is aborted and left to the
                                         next leader; shorter than --graceful-shutdown-timeout
                                         (default 0s: abort at once)
  --iam-token-refresh DUR                a new IAM token for DBClusters with
                                         spec.authentication this often; AWS tokens are
                                         valid 15m (default 10m; 1s to 14m)
  --pg-tools-dir DIR                     where pg_dump/psql live (repeatable; default
                                         /usr/lib/postgresql/*/bin and PATH)
  --backup-signing-secret NS/NAME        Secret with the keys that sign backup manifests;
                                         created with a random key when missing (default
                                         <leader election namespace>/dbtether-backup-signing)
  --postgresdatabase-cluster NAME        DBCluster used by PostgresDatabase objects (default:
                                         the libpq environment PGHOST, PGPORT, PGUSER, ...)
  --disable-postgresdatabase             do not run the PostgresDatabase controller

Environment: PG_DB_OPERATOR_PASSWORD_ROTATION_INTERVAL_SECONDS enables PostgresDatabase
password rotation (unset: none).

Examples:
  dbtether run --kubeconfig ~/.kube/prod --log-format text
  dbtether run --leader-elect --namespaces team-a,team-b
`;

const DUR = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Parses "500ms", "10s", "5m", "1h", "7d" into milliseconds. */
export function parseDuration(s: string, flag: string): number {
  const m = DUR.exec(s.trim());
  if (!m) throw new ConfigError(`Invalid ${flag} "${s}": use a duration such as 30s, 5m or 1h`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms"];
  return Math.round(n * unit);
}

function listenAddress(s: string, flag: string): string {
  try {
    parseAddress(s);
  } catch (e) {
    throw new ConfigError(
      `Invalid ${flag} "${s}": ${
        (e as Error).message.replace(/^Invalid listen address "[^"]*": /, "")
      } ` +
        "(use host:port such as 127.0.0.1:8080 or :8080, or 0 to disable)",
    );
  }
  return s;
}

function positiveInt(s: string, flag: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) {
    throw new ConfigError(`Invalid ${flag} "${s}": expected a whole number ≥ 1`);
  }
  return n;
}

/** `--backup-stall-timeout`: at least one second (0 would fail every upload at once). */
function stallTimeout(s: string): number {
  const ms = parseDuration(s, "--backup-stall-timeout");
  if (ms < 1000) {
    throw new ConfigError(`Invalid --backup-stall-timeout "${s}": use at least 1s`);
  }
  return ms;
}

function boundedInt(s: string, flag: string, min: number, max: number): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`Invalid ${flag} "${s}": expected a whole number from ${min} to ${max}`);
  }
  return n;
}

function oneOf<T extends string>(s: string, values: readonly T[], flag: string): T {
  if (!values.includes(s as T)) {
    throw new ConfigError(`Invalid ${flag} "${s}": expected one of ${values.join(", ")}`);
  }
  return s as T;
}

/** `<namespace>/<name>` of a Secret. */
export function parseSecretRef(value: string, flag: string): { namespace: string; name: string } {
  const m = /^([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\/([a-z0-9](?:[-.a-z0-9]*[a-z0-9])?)$/.exec(value);
  if (!m || m[1]!.length > 63 || m[2]!.length > 253) {
    throw new ConfigError(`Invalid ${flag} "${value}": expected <namespace>/<name> of a Secret`);
  }
  return { namespace: m[1]!, name: m[2]! };
}

export interface RunInputs {
  args: string[];
  env: Record<string, string | undefined>;
  /** The pod's namespace from the service account, when running in a cluster. */
  podNamespace?: string;
  hostname: string;
}

/** Parses `dbtether run` flags; throws ConfigError with a one-line message. */
export function parseRunConfig(inp: RunInputs): Readonly<Config> {
  let parsed;
  try {
    parsed = parseArgs({
      args: inp.args,
      strict: true,
      allowPositionals: false,
      options: {
        kubeconfig: { type: "string" },
        "log-level": { type: "string", default: "info" },
        "log-format": { type: "string", default: "json" },
        "metrics-bind-address": { type: "string", default: ":8080" },
        "health-probe-bind-address": { type: "string", default: ":8081" },
        "leader-elect": { type: "boolean", default: false },
        "leader-election-id": { type: "string", default: "dbtether-leader" },
        "leader-election-namespace": { type: "string" },
        "lease-duration": { type: "string", default: "15s" },
        "renew-deadline": { type: "string", default: "10s" },
        "retry-period": { type: "string", default: "2s" },
        workers: { type: "string", default: "2" },
        namespaces: { type: "string", default: "" },
        "graceful-shutdown-timeout": { type: "string", default: "30s" },
        "startup-timeout": { type: "string", default: "30s" },
        "backoff-base": { type: "string", default: "1s" },
        "backoff-max": { type: "string", default: "5m" },
        "health-check-interval": { type: "string", default: "5m" },
        "resync-period": { type: "string", default: "6h" },
        "drift-scan-interval": { type: "string", default: "5m" },
        "max-concurrent-backups": { type: "string", default: "2" },
        "max-concurrent-backups-per-cluster": { type: "string", default: "3" },
        "max-concurrent-backups-per-storage": { type: "string" },
        "backup-max-attempts": { type: "string", default: "3" },
        "backup-gzip-workers": { type: "string", default: "2" },
        "backup-shutdown-grace": { type: "string", default: "0s" },
        "backup-storage-retry-for": { type: "string", default: "10m" },
        "backup-stall-timeout": { type: "string", default: "60s" },
        "pg-tools-dir": { type: "string", multiple: true, default: [] },
        "iam-token-refresh": { type: "string", default: "10m" },
        "backup-signing-secret": { type: "string" },
        "postgresdatabase-cluster": { type: "string" },
        "disable-postgresdatabase": { type: "boolean", default: false },
      },
    });
  } catch (e) {
    // node:util explains the fix on further lines; the first line says what is wrong.
    const first = (e as Error).message.split("\n")[0]!.replace(/\. To specify.*$/, "");
    throw new ConfigError(`${first} (see dbtether run --help)`);
  }
  const v = parsed.values;
  const leaseDurationMs = parseDuration(v["lease-duration"], "--lease-duration");
  const renewDeadlineMs = parseDuration(v["renew-deadline"], "--renew-deadline");
  const retryPeriodMs = parseDuration(v["retry-period"], "--retry-period");
  if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs)) {
    throw new ConfigError(
      "Invalid leader election timing: need --lease-duration > --renew-deadline > --retry-period",
    );
  }
  const gracefulShutdownMs = parseDuration(
    v["graceful-shutdown-timeout"],
    "--graceful-shutdown-timeout",
  );
  const backupShutdownGraceMs = parseDuration(
    v["backup-shutdown-grace"],
    "--backup-shutdown-grace",
  );
  // The abort, the Pending status write and the exit need time after the grace ends.
  if (backupShutdownGraceMs > 0 && backupShutdownGraceMs >= gracefulShutdownMs) {
    throw new ConfigError(
      `Invalid --backup-shutdown-grace "${v["backup-shutdown-grace"]}": it must be shorter ` +
        `than --graceful-shutdown-timeout (${v["graceful-shutdown-timeout"]})`,
    );
  }
  const rotation = inp.env.PG_DB_OPERATOR_PASSWORD_ROTATION_INTERVAL_SECONDS;
  let rotationIntervalMs: number | undefined;
  if (rotation !== undefined && rotation !== "") {
    const n = Number(rotation);
    if (!Number.isFinite(n) || n <= 0) {
      throw new ConfigError(
        `Invalid PG_DB_OPERATOR_PASSWORD_ROTATION_INTERVAL_SECONDS "${rotation}": expected a positive number of seconds`,
      );
    }
    rotationIntervalMs = n * 1000;
  }
  const iamTokenRefreshMs = parseDuration(v["iam-token-refresh"], "--iam-token-refresh");
  const refreshProblem = refreshPeriodProblem(iamTokenRefreshMs);
  if (refreshProblem) {
    throw new ConfigError(
      `Invalid --iam-token-refresh "${v["iam-token-refresh"]}": it ${refreshProblem}`,
    );
  }
  const leaderElectionNamespace = v["leader-election-namespace"] ?? inp.podNamespace ?? "default";
  const config: Config = {
    ...(v.kubeconfig ? { kubeconfig: v.kubeconfig } : {}),
    logLevel: oneOf(v["log-level"], ["debug", "info", "warn", "error"] as const, "--log-level"),
    logFormat: oneOf(v["log-format"], ["json", "text"] as const, "--log-format"),
    metricsAddress: listenAddress(v["metrics-bind-address"], "--metrics-bind-address"),
    healthAddress: listenAddress(v["health-probe-bind-address"], "--health-probe-bind-address"),
    leaderElect: v["leader-elect"],
    leaderElectionId: v["leader-election-id"],
    leaderElectionNamespace,
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    workers: positiveInt(v.workers, "--workers"),
    namespaces: v.namespaces.split(",").map((s) => s.trim()).filter(Boolean),
    gracefulShutdownMs,
    startupTimeoutMs: parseDuration(v["startup-timeout"], "--startup-timeout"),
    backoffBaseMs: parseDuration(v["backoff-base"], "--backoff-base"),
    backoffMaxMs: parseDuration(v["backoff-max"], "--backoff-max"),
    healthCheckIntervalMs: parseDuration(v["health-check-interval"], "--health-check-interval"),
    resyncPeriodMs: parseDuration(v["resync-period"], "--resync-period"),
    driftScanIntervalMs: parseDuration(v["drift-scan-interval"], "--drift-scan-interval"),
    maxConcurrentBackups: positiveInt(v["max-concurrent-backups"], "--max-concurrent-backups"),
    maxConcurrentBackupsPerCluster: positiveInt(
      v["max-concurrent-backups-per-cluster"],
      "--max-concurrent-backups-per-cluster",
    ),
    ...(v["max-concurrent-backups-per-storage"] !== undefined
      ? {
        maxConcurrentBackupsPerStorage: positiveInt(
          v["max-concurrent-backups-per-storage"],
          "--max-concurrent-backups-per-storage",
        ),
      }
      : {}),
    backupStallTimeoutMs: stallTimeout(v["backup-stall-timeout"]),
    backupMaxAttempts: positiveInt(v["backup-max-attempts"], "--backup-max-attempts"),
    backupGzipWorkers: boundedInt(v["backup-gzip-workers"], "--backup-gzip-workers", 0, 16),
    backupShutdownGraceMs,
    backupStorageRetryForMs: parseDuration(
      v["backup-storage-retry-for"],
      "--backup-storage-retry-for",
    ),
    pgToolsDirs: v["pg-tools-dir"],
    iamTokenRefreshMs,
    backupSigningSecret: parseSecretRef(
      v["backup-signing-secret"] ?? `${leaderElectionNamespace}/dbtether-backup-signing`,
      "--backup-signing-secret",
    ),
    postgresDatabase: {
      enabled: !v["disable-postgresdatabase"],
      ...(v["postgresdatabase-cluster"] ? { cluster: v["postgresdatabase-cluster"] } : {}),
      ...(rotationIntervalMs !== undefined ? { rotationIntervalMs } : {}),
    },
    identity: `${inp.hostname}_${crypto.randomUUID().slice(0, 8)}`,
  };
  return Object.freeze(config);
}
