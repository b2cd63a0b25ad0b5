/**
 * Pieces of `dbtether backup` / `dbtether restore` that do not run anything: the connection
 * from flags and libpq variables, byte and rate formatting, and the progress reporter.
 */
import { DbtetherError } from "../lib/errors.ts";
import type { PgConnection, SslMode } from "./dump_command.ts";

/** A bad command line: printed as one line, exit code 2. Terminal: the same line fails again. */
export class UsageError extends DbtetherError<"InvalidUsage"> {
  override name = "UsageError";
  constructor(message: string, options?: ErrorOptions) {
    super("InvalidUsage", message, { ...options, terminal: true });
  }
}

export const CONNECTION_OPTIONS = {
  host: { type: "string", short: "h" },
  port: { type: "string", short: "p" },
  username: { type: "string", short: "U" },
  dbname: { type: "string", short: "d" },
  database: { type: "string" },
  sslmode: { type: "string" },
  sslrootcert: { type: "string" },
  "password-file": { type: "string" },
  "tool-dir": { type: "string", multiple: true },
} as const;

export const CONNECTION_HELP =
  `Connection (flags win over the libpq environment variables in brackets):
  -h, --host HOST           server host or socket directory [PGHOST]
  -p, --port PORT           server port [PGPORT]
  -U, --username USER       role to connect as [PGUSER]
  -d, --dbname, --database  database name, never read as connection parameters [PGDATABASE]
      --sslmode MODE        disable|allow|prefer|require|verify-ca|verify-full [PGSSLMODE]
      --sslrootcert FILE    CA bundle for verify-ca/verify-full [PGSSLROOTCERT]
      --password-file FILE  file whose first line is the password
  The password comes from --password-file, PGPASSWORD or PGPASSFILE; never from a flag value.
      --tool-dir DIR        where to look for pg_dump/psql/pg_restore (repeatable; '*' matches
                            one path segment). Default: /usr/lib/postgresql/*/bin, then PATH.
`;

const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

type ConnFlags = {
  host?: string | undefined;
  port?: string | undefined;
  username?: string | undefined;
  dbname?: string | undefined;
  database?: string | undefined;
  sslmode?: string | undefined;
  sslrootcert?: string | undefined;
  "password-file"?: string | undefined;
};

/**
 * The connection from flags, then libpq variables, then libpq's defaults. `readFile` reads the
 * password file (injected so this stays pure).
 */
export function connectionFrom(
  flags: ConnFlags,
  env: Record<string, string | undefined>,
  readFile: (path: string) => string,
): PgConnection {
  const host = flags.host ?? env.PGHOST ?? "localhost";
  const user = flags.username ?? env.PGUSER ?? env.USER;
  const database = flags.dbname ?? flags.database ?? env.PGDATABASE;
  if (!user) throw new UsageError("No role to connect as: pass --username or set PGUSER");
  if (!database) throw new UsageError("No database: pass --dbname or set PGDATABASE");
  const conn: PgConnection = { host, user, database };
  const port = flags.port ?? env.PGPORT;
  if (port !== undefined) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw new UsageError(`Invalid port "${port}": expected 1 to 65535`);
    }
    conn.port = n;
  }
  const sslmode = flags.sslmode ?? env.PGSSLMODE;
  if (sslmode !== undefined) {
    if (!SSL_MODES.includes(sslmode)) {
      throw new UsageError(`Invalid sslmode "${sslmode}": expected one of ${SSL_MODES.join(", ")}`);
    }
    conn.sslmode = sslmode as SslMode;
  }
  const rootcert = flags.sslrootcert ?? env.PGSSLROOTCERT;
  if (rootcert) conn.sslrootcert = rootcert;
  if (env.PGSSLCERT) conn.sslcert = env.PGSSLCERT;
  if (env.PGSSLKEY) conn.sslkey = env.PGSSLKEY;
  const pwFile = flags["password-file"];
  if (pwFile) {
    let text: string;
    try {
      text = readFile(pwFile);
    } catch (e) {
      throw new UsageError(`Cannot read the password file "${pwFile}": ${(e as Error).message}`);
    }
    conn.password = text.split("\n")[0]!.replace(/\r$/, "");
  } else if (env.PGPASSWORD !== undefined) conn.password = env.PGPASSWORD;
  else if (env.PGPASSFILE) conn.passfile = env.PGPASSFILE;
  return conn;
}

/** `1.23 GB`, `512 kB`: decimal units, like the rates. */
export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

/** `1:02:03` or `2:03`. */
export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh > 0 ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** Where progress goes: a one-line bar on a terminal, JSON lines otherwise. */
export interface ProgressSink {
  progress(p: { read: number; written: number; elapsedMs: number }): void;
  done(summary: Record<string, unknown>, line: string): void;
}

/** The progress reporter for `write` (stdout). */
export function progressSink(
  write: (s: string) => void,
  opts: { terminal: boolean; verb: "backup" | "restore"; labels: [string, string] },
): ProgressSink {
  let drawn = false;
  return {
    progress({ read, written, elapsedMs }) {
      const rate = elapsedMs > 0 ? (read / elapsedMs) * 1000 : 0;
      if (opts.terminal) {
        const line = `${opts.labels[0]} ${formatBytes(read).padStart(9)}  ${opts.labels[1]} ` +
          `${formatBytes(written).padStart(9)}  ${formatBytes(rate).padStart(9)}/s  ` +
          formatDuration(elapsedMs);
        write(`\r\x1b[2K${line}`);
        drawn = true;
      } else {
        write(
          JSON.stringify({
            event: "progress",
            operation: opts.verb,
            bytesRead: read,
            bytesWritten: written,
            bytesPerSecond: Math.round(rate),
            elapsedMs,
          }) + "\n",
        );
      }
    },
    done(summary, line) {
      if (opts.terminal) write(`${drawn ? "\r\x1b[2K" : ""}${line}\n`);
      else write(JSON.stringify({ event: "completed", operation: opts.verb, ...summary }) + "\n");
    },
  };
}
