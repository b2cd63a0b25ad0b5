/**
 * Structured logging: JSON lines for machines, a compact text form for terminals.
 * Loggers are values handed in at construction; nothing here reads the environment.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "text";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: LogFields): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; stderr by default so stdout stays free for command output. */
  write?: (line: string) => void;
  now?: () => Date;
}

const encoder = new TextEncoder();
const stderrWrite = (line: string) => Deno.stderr.writeSync(encoder.encode(line + "\n"));

/** Creates a logger. Error values in fields are reduced to their message. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = ORDER[opts.level ?? "info"];
  const write = opts.write ?? stderrWrite;
  const now = opts.now ?? (() => new Date());
  const format = opts.format ?? "json";
  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (ORDER[level] < min) return;
      const all = { ...base, ...fields };
      write(
        format === "json"
          ? JSON.stringify({ ts: now().toISOString(), level, msg, ...plain(all) })
          : textLine(now(), level, msg, all),
      );
    };
    return {
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
      with: (f) => make({ ...base, ...f }),
    };
  };
  return make({});
}

/** A logger that drops everything, for tests and library defaults. */
export const nullLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  with: () => nullLogger,
};

function plain(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = v instanceof Error ? v.message : v;
  }
  return out;
}

function textLine(ts: Date, level: LogLevel, msg: string, fields: LogFields): string {
  const rest = Object.entries(plain(fields))
    .map(([k, v]) => `${k}=${typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v)}`)
    .join(" ");
  return `${ts.toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}${rest ? " " + rest : ""}`;
}
