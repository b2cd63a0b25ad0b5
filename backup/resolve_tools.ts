/** Which client tools to run for one server: shared by backup and restore. */
import type { Clock } from "../lib/clock.ts";
import type { Logger } from "../lib/log.ts";
import type { PgConnection } from "./dump_command.ts";
import type { ProgressOptions } from "./streams.ts";
import {
  DEFAULT_TOOL_DIRS,
  DEFAULT_TOOLS_HINT,
  findPgTools,
  listToolsets,
  type PgToolset,
  queryServerVersion,
  refusedNote,
  ToolNotFoundError,
  ToolTooOldError,
} from "./pg_tools.ts";

export type { PgToolset };

/** Which tools to run, as a caller may choose them. */
export interface ToolChoice {
  /** Tools the caller chose; still checked against the server's version. */
  tools?: PgToolset;
  /** Where to look for toolsets otherwise; default {@link DEFAULT_TOOL_DIRS}. */
  toolDirs?: string[];
  /** The server's version when the caller knows it (saves a psql round trip). */
  serverVersion?: { major: number; version: string };
  /**
   * How the user points the program at other tools, named in ToolNotFound/ToolTooOld messages:
   * default `--pg-tools-dir` (`dbtether run`); the CLI's is `--tool-dir`.
   */
  toolsHint?: string;
}

/** Options of {@link resolveTools}. */
export interface ResolveToolsOptions extends ToolChoice {
  connection: PgConnection;
  require: ("psql" | "pgRestore")[];
  signal?: AbortSignal;
}

/** What a dump and a restore both take: cancellation, reporting, and the tools to run. */
export interface ToolJobOptions<P> extends ToolChoice, ProgressOptions<P> {
  signal?: AbortSignal;
  logger?: Logger;
  clock?: Clock;
}

export interface ResolvedTools {
  toolset: PgToolset;
  server: { major: number; version: string };
}

/**
 * The server's version (asked with the newest psql found unless given) and the toolset with the
 * smallest major version that can serve it. Throws ToolNotFoundError, ToolTooOldError (only
 * tools older than the server) or ToolFailedError.
 */
export async function resolveTools(opts: ResolveToolsOptions): Promise<ResolvedTools> {
  const dirs = opts.toolDirs ?? DEFAULT_TOOL_DIRS;
  const hint = opts.toolsHint ? { hint: opts.toolsHint } : {};
  let server = opts.serverVersion;
  if (!server) {
    const refused: string[] = [];
    const psql = opts.tools?.psql ?? newest(await listToolsets(dirs, refused))?.psql;
    if (!psql) {
      throw new ToolNotFoundError(
        `Cannot find PostgreSQL client tools: no pg_dump/psql in ${dirs.join(", ")}; install ` +
          `them and point ${opts.toolsHint ?? DEFAULT_TOOLS_HINT} at their bin directory` +
          refusedNote(refused),
      );
    }
    server = await queryServerVersion(psql, opts.connection, pickSignal(opts.signal));
  }
  if (opts.tools) {
    if (opts.tools.major < server.major) {
      throw new ToolTooOldError(
        `Cannot use pg_dump ${opts.tools.version} (${opts.tools.dir}) for PostgreSQL ` +
          `${server.version}: pg_dump must be of major ${server.major} or newer`,
      );
    }
    return { toolset: opts.tools, server };
  }
  return { toolset: await findPgTools(server, { dirs, require: opts.require, ...hint }), server };
}

function newest(sets: PgToolset[]): PgToolset | undefined {
  return [...sets].sort((a, b) => b.major - a.major)[0];
}

function pickSignal(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}
