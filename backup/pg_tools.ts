/**
 * Finding the PostgreSQL client tools that can dump a given server.
 *
 * pg_dump refuses servers newer than itself, and a newer pg_dump may emit syntax an older server
 * cannot restore, so we pick the *smallest* major version that is >= the server's major.
 */
import { DbtetherError } from "../lib/errors.ts";
import {
  buildServerVersionCommand,
  connectionSecrets,
  type PgConnection,
  toolProcess,
} from "./dump_command.ts";
import { redact } from "./stderr_tail.ts";

/** One directory of client tools of one major version. */
export interface PgToolset {
  dir: string;
  /** Full version of pg_dump, e.g. "15.18". */
  version: string;
  major: number;
  pgDump: string;
  psql: string;
  pgRestore: string;
}

/** Default search pattern: Debian/Ubuntu's side-by-side installs. `*` matches one segment. */
export const DEFAULT_TOOL_DIRS = ["/usr/lib/postgresql/*/bin"];

/**
 * No tool can serve the server; `message` names the version and the directories searched. Not
 * terminal: installing the tools (a new image) fixes it without a change of the spec.
 */
export class ToolNotFoundError extends DbtetherError<"ToolNotFound"> {
  override name = "ToolNotFoundError";
  constructor(message: string, options?: ErrorOptions) {
    super("ToolNotFound", message, { ...options });
  }
}

/**
 * Client tools were found, but all of an older major than the server's: pg_dump refuses a newer
 * server. Not terminal, as ToolNotFound: newer tools (a new image, another directory) fix it.
 */
export class ToolTooOldError extends DbtetherError<"ToolTooOld"> {
  override name = "ToolTooOldError";
  constructor(message: string, options?: ErrorOptions) {
    super("ToolTooOld", message, { ...options });
  }
}

/** How the caller's user points the program at other tools, for messages. */
export const DEFAULT_TOOLS_HINT = "--pg-tools-dir";

/** The default search list: the Debian pattern, then each PATH entry (pass `Deno.env` PATH). */
export function defaultToolDirs(path?: string): string[] {
  return [...DEFAULT_TOOL_DIRS, ...(path ?? "").split(":").filter((p) => p !== "")];
}

/** Parses `pg_dump --version` output, e.g. `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`. */
export function parseToolVersion(output: string): { version: string; major: number } | undefined {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(output);
  if (!m) return undefined;
  const major = Number(m[1]);
  // Before 10 the major version had two parts (9.6); such tools cannot dump any server we
  // support, so they rank below every modern one.
  return { version: [m[1], m[2], m[3]].filter((x) => x !== undefined).join("."), major };
}

/** `server_version_num` (e.g. 150018) as a major and a short version ("15.18"). */
export function parseServerVersionNum(num: number): { version: string; major: number } {
  if (num >= 100000) {
    const major = Math.floor(num / 10000);
    return { major, version: `${major}.${num % 10000}` };
  }
  const major = Math.floor(num / 10000);
  const minor = Math.floor(num / 100) % 100;
  return { major, version: `${major}.${minor}.${num % 100}` };
}

/** Expands one `*` segment per pattern; missing directories are skipped. */
async function expand(pattern: string): Promise<string[]> {
  const i = pattern.indexOf("*");
  if (i < 0) return [pattern];
  const parent = pattern.slice(0, pattern.lastIndexOf("/", i)) || "/";
  const rest = pattern.slice(
    pattern.indexOf("/", i) >= 0 ? pattern.indexOf("/", i) : pattern.length,
  );
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(parent)) {
      if (e.isDirectory || e.isSymlink) names.push(e.name);
    }
  } catch {
    return [];
  }
  names.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const out: string[] = [];
  for (const n of names) out.push(...await expand(`${parent}/${n}${rest}`.replace(/\/+/g, "/")));
  return out;
}

const versionCache = new Map<string, { version: string; major: number } | null>();

/** Tools this process was not allowed to start (Deno's --allow-run list), by path. */
const refusedRuns = new Set<string>();

async function toolVersion(path: string): Promise<{ version: string; major: number } | null> {
  const cached = versionCache.get(path);
  if (cached !== undefined) return cached;
  let v: { version: string; major: number } | null = null;
  try {
    const out = await new Deno.Command(path, {
      args: ["--version"],
      clearEnv: true,
      env: { LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (out.success) v = parseToolVersion(new TextDecoder().decode(out.stdout)) ?? null;
  } catch (e) {
    // Not there or not executable; or there, and the binary's permissions forbid starting it.
    if (e instanceof Deno.errors.NotCapable) refusedRuns.add(path);
  }
  versionCache.set(path, v);
  return v;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Every directory (after expansion) holding a working pg_dump, with its version. */
export async function listToolsets(
  dirs: string[] = DEFAULT_TOOL_DIRS,
  refused: string[] = [],
): Promise<PgToolset[]> {
  const seen = new Set<string>();
  const out: PgToolset[] = [];
  for (const pattern of dirs) {
    for (const dir of await expand(pattern)) {
      if (seen.has(dir)) continue;
      seen.add(dir);
      const v = await toolVersion(`${dir}/pg_dump`);
      if (refusedRuns.has(`${dir}/pg_dump`)) refused.push(`${dir}/pg_dump`);
      if (!v) continue;
      out.push({
        dir,
        ...v,
        pgDump: `${dir}/pg_dump`,
        psql: `${dir}/psql`,
        pgRestore: `${dir}/pg_restore`,
      });
    }
  }
  return out;
}

/** Options of {@link findPgTools}. */
export interface FindToolsOptions {
  /** Directories to search, in order; `*` matches one path segment. */
  dirs?: string[];
  /** Which tool must exist beside pg_dump (restore needs psql or pg_restore). */
  require?: ("psql" | "pgRestore")[];
  /** The flag or variable that points at tools, for the error; default `--pg-tools-dir`. */
  hint?: string;
}

/**
 * The toolset with the smallest major version >= `serverMajor` (the first found among equals):
 * a newer pg_dump may emit syntax an older server cannot restore.
 */
export function chooseToolset(serverMajor: number, sets: PgToolset[]): PgToolset | undefined {
  let best: PgToolset | undefined;
  for (const t of sets) {
    if (t.major >= serverMajor && (!best || t.major < best.major)) best = t;
  }
  return best;
}

/**
 * Why no toolset can serve the server: ToolTooOldError when every toolset found is of an older
 * major, else ToolNotFoundError. The message names the major needed, what was found, where it
 * looked and `hint`, the way to point at other tools.
 */
export function noToolsetError(
  server: { major: number; version: string },
  o: { dirs: string[]; found: PgToolset[]; hint?: string; refused?: string[] },
): ToolNotFoundError | ToolTooOldError {
  const found = (o.found.map((t) => `${t.version} in ${t.dir}`).join(", ") || "none") +
    refusedNote(o.refused);
  const fix = `install the PostgreSQL ${server.major} (or newer) client tools and point ` +
    `${o.hint ?? DEFAULT_TOOLS_HINT} at their bin directory`;
  if (o.found.length && o.found.every((t) => t.major < server.major)) {
    return new ToolTooOldError(
      `Cannot use the client tools found for PostgreSQL ${server.version}: they must be of ` +
        `major ${server.major} or newer (pg_dump refuses a newer server), found only ${found} ` +
        `(searched ${o.dirs.join(", ")}); ${fix}`,
    );
  }
  return new ToolNotFoundError(
    `Cannot find pg_dump for PostgreSQL ${server.version}: no client tools of major ` +
      `version ${server.major} or newer in ${o.dirs.join(", ")} (found: ${found}); ${fix}`,
  );
}

/**
 * What to say about tools that exist but this program may not start: the binary's --allow-run
 * list names the client tools at the distributions' paths only (scripts/permissions.sh).
 */
export function refusedNote(refused: string[] = []): string {
  return refused.length
    ? `; not allowed to run ${refused.join(", ")}: this binary starts only the PostgreSQL ` +
      "client tools at the paths its permissions list (see docs/troubleshooting.md)"
    : "";
}

/**
 * The toolset {@link chooseToolset} picks among those with every required tool. Throws
 * {@link noToolsetError}'s error naming the server version and the directories searched.
 */
export async function findPgTools(
  serverVersion: { major: number; version: string },
  opts: FindToolsOptions = {},
): Promise<PgToolset> {
  const dirs = opts.dirs ?? DEFAULT_TOOL_DIRS;
  const refused: string[] = [];
  const all = await listToolsets(dirs, refused);
  const complete: PgToolset[] = [];
  for (const t of all) {
    const missing = await Promise.all(
      (opts.require ?? []).map(async (r) => (await isFile(t[r])) ? undefined : r),
    );
    if (missing.every((m) => m === undefined)) complete.push(t);
  }
  const best = chooseToolset(serverVersion.major, complete);
  if (best) return best;
  throw noToolsetError(serverVersion, {
    dirs,
    found: all,
    refused,
    ...(opts.hint ? { hint: opts.hint } : {}),
  });
}

/** A tool ran but failed (the server cannot be reached, say); `stderr` is redacted. */
export class ToolFailedError extends DbtetherError<"ToolFailed"> {
  override name = "ToolFailedError";
  constructor(message: string, readonly stderr: string) {
    super("ToolFailed", message);
  }
}

/** Asks the server its version with any psql (psql connects to servers of every version). */
export async function queryServerVersion(
  psql: string,
  conn: PgConnection,
  opts: { signal?: AbortSignal } = {},
): Promise<{ version: string; major: number; num: number }> {
  const cmd = buildServerVersionCommand(psql, conn);
  const out = await toolProcess(cmd, opts).output();
  const dec = new TextDecoder();
  const stderr = redact(dec.decode(out.stderr).trim(), connectionSecrets(conn));
  const num = Number(dec.decode(out.stdout).trim());
  if (!out.success || !Number.isInteger(num) || num <= 0) {
    throw new ToolFailedError(
      `Cannot read the server version of "${conn.host}": ${stderr || `psql exited ${out.code}`}`,
      stderr,
    );
  }
  return { ...parseServerVersionNum(num), num };
}
