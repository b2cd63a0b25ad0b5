/**
 * Where scripts/install-postgres.sh put the PostgreSQL servers of every supported major, and
 * which one `DBTETHER_PG_VERSION` (13–18, default the newest) picks for the tests, `make dev-up`
 * and `make demo`.
 *
 * Layout: `<root>/<version>/bin`, root being `$DBTETHER_PG_CACHE`, else
 * `/var/cache/dbtether/postgres` as root (the `postgres` OS user the servers run as cannot enter
 * /root), else `$DBTETHER_CACHE/postgres` (default `~/.cache/dbtether/postgres`). The install
 * script uses the same rule.
 */
import { isSupportedMajor, NEWEST_PG_MAJOR, type PgMajor } from "../../lib/pg_majors.ts";

/** One installed PostgreSQL. */
export interface PgInstall {
  major: number;
  /** The pinned version, e.g. "18.6.0" (13: "13.23.0-beta.16", the npm package's). */
  version: string;
  binDir: string;
  /** Whether it has client tools (psql, pg_dump); the 13 package has the server only. */
  hasClients: boolean;
}

const INSTALL_HINT = "run scripts/install-postgres.sh (make deps)";

/** The directory holding one subdirectory per installed version. */
export function pgCacheRoot(env: (k: string) => string | undefined = (k) => Deno.env.get(k)) {
  const explicit = env("DBTETHER_PG_CACHE");
  if (explicit) return explicit;
  if (Deno.uid() === 0) return "/var/cache/dbtether/postgres";
  const cache = env("DBTETHER_CACHE") ?? `${env("HOME") ?? "/tmp"}/.cache/dbtether`;
  return `${cache}/postgres`;
}

function isExecutable(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Every installed version, oldest major first. */
export function installedPostgres(root = pgCacheRoot()): PgInstall[] {
  const out: PgInstall[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(root)];
  } catch {
    return [];
  }
  for (const e of entries) {
    const m = /^(\d+)\.\d+/.exec(e.name);
    const binDir = `${root}/${e.name}/bin`;
    if (!m || !isExecutable(`${binDir}/postgres`)) continue;
    out.push({
      major: Number(m[1]),
      version: e.name,
      binDir,
      hasClients: isExecutable(`${binDir}/psql`) && isExecutable(`${binDir}/pg_dump`),
    });
  }
  return out.sort((a, b) => a.major - b.major || a.version.localeCompare(b.version));
}

/** The major `DBTETHER_PG_VERSION` asks for (default the newest); throws on anything else. */
export function selectedMajor(value = Deno.env.get("DBTETHER_PG_VERSION")): PgMajor {
  if (value === undefined || value.trim() === "") return NEWEST_PG_MAJOR;
  const n = Number(value.trim());
  if (!Number.isInteger(n) || !isSupportedMajor(n)) {
    throw new Error(
      `Cannot use DBTETHER_PG_VERSION=${value}: expected a PostgreSQL major from 13 to 18`,
    );
  }
  return n;
}

/** The installed server of `major`, or an error naming the install script. */
export function serverInstall(major: number = selectedMajor()): PgInstall {
  const all = installedPostgres();
  const found = all.filter((i) => i.major === major).at(-1);
  if (!found) {
    const have = all.map((i) => i.version).join(", ") || "none";
    throw new Error(
      `Cannot find PostgreSQL ${major} in ${pgCacheRoot()} (installed: ${have}): ${INSTALL_HINT}`,
    );
  }
  return found;
}

/**
 * The client tools for a server of `major`: the smallest installed major >= it that has them
 * (the rule the program follows), else the newest.
 */
export function clientInstall(major: number): PgInstall {
  const clients = installedPostgres().filter((i) => i.hasClients);
  const found = clients.find((i) => i.major >= major) ?? clients.at(-1);
  if (!found) throw new Error(`Cannot find any psql in ${pgCacheRoot()}: ${INSTALL_HINT}`);
  return found;
}

/** The bin directories with client tools, for `--pg-tools-dir` and the engine's `toolDirs`. */
export function clientToolDirs(): string[] {
  return installedPostgres().filter((i) => i.hasClients).map((i) => i.binDir);
}
