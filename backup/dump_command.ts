/**
 * Pure builders of the argv and environment for pg_dump, psql and pg_restore.
 *
 * Invariants:
 * - The password never appears in argv (visible to every user through /proc/<pid>/cmdline):
 *   it travels in PGPASSWORD or a passfile named by PGPASSFILE.
 * - The environment is built from scratch, never inherited: the operator's own environment may
 *   hold cloud credentials and other secrets that a child process has no business seeing.
 * - `-w` everywhere: a tool must fail rather than prompt (psql's stdin is the dump).
 * - The database reaches every tool only as `--dbname=dbname='<name>'` ({@link dbnameConninfo}):
 *   libpq expands a `--dbname` value containing `=` as a connection string, so a database
 *   called `host=evil dbname=x` would otherwise send our credentials to `evil`. A conninfo
 *   string that holds nothing but a quoted `dbname` cannot set anything else.
 */
import { type CompressionAlgorithm, defaultLevel, levelProblem } from "./compression.ts";

export type DumpFormat = "plain" | "custom";
export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";

/** How to reach one database; mirrors the libpq environment variables. */
export interface PgConnection {
  host: string;
  port?: number;
  user: string;
  database: string;
  /** Passed as PGPASSWORD; never in argv, logs or errors. */
  password?: string;
  /** A libpq passfile; used instead of `password` when set. */
  passfile?: string;
  sslmode?: SslMode;
  sslrootcert?: string;
  sslcert?: string;
  sslkey?: string;
  connectTimeoutSeconds?: number;
  applicationName?: string;
  /**
   * A role to act as once connected (`SET ROLE` through PGOPTIONS `-c role=...`): a restore
   * runs as the Database's owner role, so what it creates belongs to that role. The login
   * user must be a member of it.
   */
  role?: string;
}

/** A fully built subprocess invocation, ready for Deno.Command (with `clearEnv: true`). */
export interface ToolCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * The process of a built invocation: its arguments and only its own environment (`clearEnv`),
 * stdout and stderr piped unless told otherwise; `signal` kills it.
 */
export function toolProcess(
  cmd: ToolCommand,
  o: { stdin?: "null" | "piped"; stdout?: "null" | "piped"; signal?: AbortSignal } = {},
): Deno.Command {
  return new Deno.Command(cmd.command, {
    args: cmd.args,
    env: cmd.env,
    clearEnv: true,
    stdin: o.stdin ?? "null",
    stdout: o.stdout ?? "piped",
    stderr: "piped",
    ...(o.signal ? { signal: o.signal } : {}),
  });
}

/** The secrets a ToolCommand carries, for redaction of anything a tool prints. */
export function connectionSecrets(conn: PgConnection): string[] {
  return conn.password ? [conn.password] : [];
}

/**
 * The minimal libpq environment for a connection. The database is not in it: every builder
 * passes it as `--dbname` ({@link dbnameArg}), the one place a tool reads it from.
 */
export function connectionEnv(conn: PgConnection): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: conn.host,
    PGUSER: conn.user,
    PGCONNECT_TIMEOUT: String(conn.connectTimeoutSeconds ?? 15),
    PGAPPNAME: conn.applicationName ?? "dbtether",
    // English, stable messages for the stderr we show in status; UTF-8 for non-ASCII names.
    LC_ALL: "C.UTF-8",
    // Never read the operator user's ~/.pgpass by accident.
    PGPASSFILE: conn.passfile ?? "/dev/null",
  };
  if (conn.port !== undefined) env.PGPORT = String(conn.port);
  if (conn.password !== undefined && conn.passfile === undefined) env.PGPASSWORD = conn.password;
  if (conn.sslmode) env.PGSSLMODE = conn.sslmode;
  if (conn.sslrootcert) env.PGSSLROOTCERT = conn.sslrootcert;
  if (conn.sslcert) env.PGSSLCERT = conn.sslcert;
  if (conn.sslkey) env.PGSSLKEY = conn.sslkey;
  if (conn.role !== undefined) env.PGOPTIONS = `-c role=${pgOptionValue(conn.role)}`;
  return env;
}

/**
 * A value escaped for PGOPTIONS: the server splits the options at whitespace, and a backslash
 * takes the next character literally, so backslashes and whitespace are backslash-escaped.
 * The value needs no SQL quoting: a GUC set at startup is taken verbatim (no downcasing).
 * A NUL cannot travel in the startup packet (C strings) and is rejected.
 */
export function pgOptionValue(value: string): string {
  if (value.includes("\0")) {
    throw new RangeError("Invalid connection option: the value contains a NUL character");
  }
  if (value === "") throw new RangeError("Invalid connection option: the value is empty");
  // isspace() in the C locale: space, \t, \n, \v, \f, \r.
  return value.replace(/[\\ \t\n\v\f\r]/g, (c) => `\\${c}`);
}

/**
 * The database as a libpq connection string holding only `dbname`: the value single-quoted,
 * with backslashes and single quotes backslash-escaped (libpq's conninfo syntax). Whatever
 * the name contains (`=`, spaces, `host=...`, `service=...`), libpq takes it as the name.
 * A NUL cannot travel in a C string and is rejected.
 */
export function dbnameConninfo(database: string): string {
  if (database.includes("\0")) {
    throw new RangeError("Invalid database name: it contains a NUL character");
  }
  if (database === "") throw new RangeError("Invalid database name: it is empty");
  return `dbname='${database.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/** `--dbname=dbname='...'`: how every tool is told the database. */
export function dbnameArg(conn: Pick<PgConnection, "database">): string {
  return `--dbname=${dbnameConninfo(conn.database)}`;
}

/** Options of {@link buildDumpCommand}. */
export interface DumpCommandOptions {
  format: DumpFormat;
  /**
   * For `custom`, pg_dump's own codec (default gzip; zstd needs pg_dump 16+) and level (gzip
   * 0-9, zstd 1-19); ignored for `plain`.
   */
  compression?: CompressionAlgorithm;
  compressionLevel?: number;
  /**
   * Keep `ALTER ... OWNER TO` and GRANT/REVOKE in the dump. Off by default: the roles of the
   * source rarely exist (or are not grantable by a non-superuser) where the dump is restored,
   * and dbtether re-applies the Database's grants after a restore.
   */
  includeOwnership?: boolean;
  /** Seconds to wait for table locks before failing instead of queueing behind DDL. */
  lockWaitTimeoutSeconds?: number;
  /** An exported snapshot to dump in (`--snapshot`); its transaction must stay open. */
  snapshot?: string;
}

/** argv/env for `pg_dump` writing the dump to stdout. */
export function buildDumpCommand(
  pgDump: string,
  conn: PgConnection,
  opts: DumpCommandOptions,
): ToolCommand {
  const args = ["--no-password", dbnameArg(conn), `--format=${opts.format}`];
  if (opts.format === "custom") args.push(customCompressArg(opts));
  if (!opts.includeOwnership) args.push("--no-owner", "--no-privileges");
  if (opts.lockWaitTimeoutSeconds !== undefined) {
    args.push(`--lock-wait-timeout=${Math.round(opts.lockWaitTimeoutSeconds * 1000)}`);
  }
  if (opts.snapshot !== undefined) {
    // pg_export_snapshot() returns hex digits and dashes; anything else is not one.
    if (!/^[0-9A-F-]{1,64}$/i.test(opts.snapshot)) {
      throw new RangeError(`Invalid snapshot identifier ${JSON.stringify(opts.snapshot)}`);
    }
    args.push(`--snapshot=${opts.snapshot}`);
  }
  return toolCommand(pgDump, { conn, purpose: "backup", args: args });
}

/**
 * argv/env for `psql` applying a plain dump read from stdin in one transaction. Nothing is
 * committed before psql reads end-of-file on stdin, so killing psql earlier rolls back.
 */
export function buildPsqlRestoreCommand(psql: string, conn: PgConnection): ToolCommand {
  return toolCommand(psql, {
    conn,
    purpose: "restore",
    args: [
      "--no-psqlrc",
      "--no-password",
      dbnameArg(conn),
      "--quiet",
      "--set=ON_ERROR_STOP=1",
      "--single-transaction",
      "--file=-",
    ],
  });
}

/** argv/env for `pg_restore` applying a custom-format archive read from stdin. */
export function buildPgRestoreCommand(
  pgRestore: string,
  conn: PgConnection,
  opts: { includeOwnership?: boolean } = {},
): ToolCommand {
  const args = [
    "--no-password",
    "--exit-on-error",
    "--single-transaction",
    // pg_restore only connects when given -d; the name is not a secret.
    dbnameArg(conn),
  ];
  if (!opts.includeOwnership) args.push("--no-owner", "--no-privileges");
  return toolCommand(pgRestore, { conn, purpose: "restore", args: args });
}

/** argv/env for `psql` printing the server's `server_version_num` (e.g. `150018`). */
export function buildServerVersionCommand(psql: string, conn: PgConnection): ToolCommand {
  return toolCommand(psql, {
    conn,
    purpose: "version",
    args: [
      "--no-psqlrc",
      "--no-password",
      dbnameArg(conn),
      "--tuples-only",
      "--no-align",
      "--command=SHOW server_version_num",
    ],
  });
}

/** A tool's command line with the connection's environment and an application_name. */
function toolCommand(
  command: string,
  o: { conn: PgConnection; purpose: string; args: string[] },
): ToolCommand {
  const applicationName = appName(o.conn, o.purpose);
  return { command, args: o.args, env: connectionEnv({ ...o.conn, applicationName }) };
}

function appName(conn: PgConnection, what: string): string {
  return conn.applicationName ?? `dbtether-${what}`;
}

/** `--compress=6` for gzip (what every pg_dump reads), `--compress=zstd:3` for zstd. */
function customCompressArg(opts: DumpCommandOptions): string {
  const algorithm = opts.compression ?? "gzip";
  const level = opts.compressionLevel ?? defaultLevel(algorithm);
  const bad = levelProblem(algorithm, level);
  if (bad) throw new RangeError(`Invalid compression: ${bad}`);
  return algorithm === "gzip" ? `--compress=${level}` : `--compress=zstd:${level}`;
}
