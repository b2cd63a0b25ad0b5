/**
 * Restore throughput benchmark (`make bench`, after the backup benchmark):
 *
 *   scripts/deno run -A bench/restore_bench.ts [--rows-large N]
 *
 * Uses the backup benchmark's cached cluster and large database. dbtether backs it up once with
 * gzip and once with zstd into a local directory (not measured); then, in one run, each object
 * is restored into an empty database by the shell baseline (`gunzip -c | psql` and
 * `zstd -dc | psql`, psql with the flags dbtether's restore uses: --single-transaction,
 * ON_ERROR_STOP) and by dbtether's restore engine (SHA-256 check, decompression, psql in
 * restricted mode) in its own process. Every run is wrapped in /usr/bin/time. Results go to
 * bench/RESULTS.md between the `restore:begin`/`restore:end` markers.
 */
import { parseArgs } from "node:util";
import { runBackup } from "../backup/pipeline.ts";
import { runRestore } from "../backup/restore.ts";
import type { CompressionAlgorithm } from "../backup/compression.ts";
import { LocalStore } from "../storage/local.ts";
import {
  BENCH_OPTIONS,
  BIN,
  type Cluster,
  cluster,
  ensureDatabase,
  log,
  mb,
  pgEnv,
  type Timed,
  timed,
  underTime,
  writeSection,
} from "./backup_bench.ts";

interface ChildSpec {
  socketDir: string;
  port: number;
  database: string;
  dir: string;
  key: string;
}

/** dbtether's restore, in its own process so its peak RSS is its own. */
async function child(spec: ChildSpec): Promise<void> {
  const t0 = performance.now();
  await runRestore({
    store: new LocalStore({ path: spec.dir }),
    key: spec.key,
    connection: {
      host: spec.socketDir,
      port: spec.port,
      user: "postgres",
      database: spec.database,
    },
    toolDirs: [BIN],
  });
  const hwm = /VmHWM:\s+(\d+)/.exec(await Deno.readTextFile("/proc/self/status"))?.[1];
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ hwmMb: Number(hwm) / 1024, seconds }));
}

const PSQL = `${BIN}/psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --single-transaction`;

async function main(rowsLarge: number): Promise<void> {
  const dir = Deno.env.get("DBTETHER_BENCH_DIR") ?? "/var/tmp/dbtether-bench";
  const out = `${dir}/restore`;
  await Deno.mkdir(out, { recursive: true });
  const pg = await cluster(dir);
  const rows: string[][] = [];
  try {
    await ensureDatabase(pg, "bench_large", rowsLarge);
    const rowCount = await pg.sql("SELECT count(*) FROM events", "bench_large");
    for (const codec of ["gzip", "zstd"] as const) {
      const key = await backupOnce(pg, out, { codec, rows: rowsLarge });
      const file = `${out}/${key}`;
      const size = (await Deno.stat(file)).size;
      const tool = codec === "gzip" ? "gunzip -c" : "zstd -q -dc";
      log(`baseline: ${tool} | psql`);
      const base = await intoFresh(
        pg,
        rowCount,
        (db) => timed(`${tool} ${file} | ${PSQL} --dbname=${db}`, pgEnv(pg)),
      );
      log(`dbtether restore (${codec})`);
      const ours = await intoFresh(pg, rowCount, (db) => engine(pg, { dir: out, key, db }));
      rows.push(row(`\`${tool} \\| psql\``, size, base, base));
      rows.push(row(`dbtether restore (${codec})`, size, ours, base));
    }
    await writeSection("restore", {
      header: [
        "pipeline",
        "stored",
        "MB/s of stored",
        "wall s",
        "× baseline",
        "process wall s",
        "CPU s",
        "peak RSS",
      ],
      rows,
      command: `scripts/deno run -A bench/restore_bench.ts --rows-large ${rowsLarge}`,
    });
  } finally {
    await pg.stop();
  }
}

function row(
  name: string,
  size: number,
  r: Timed & { processSeconds?: number },
  base: Timed,
): string[] {
  return [
    name,
    mb(size),
    (size / 1e6 / r.seconds).toFixed(0),
    r.seconds.toFixed(1),
    `${(base.seconds / r.seconds).toFixed(2)}×`,
    (r.processSeconds ?? r.seconds).toFixed(1),
    r.cpu.toFixed(1),
    `${r.rssMb.toFixed(0)} MB`,
  ];
}

/** The object to restore, made once per codec by dbtether itself. */
async function backupOnce(
  pg: Cluster,
  dir: string,
  o: { codec: CompressionAlgorithm; rows: number },
) {
  const { codec } = o;
  const key = `bench_large-${o.rows}.sql.${codec === "gzip" ? "gz" : "zst"}`;
  try {
    await Deno.stat(`${dir}/${key}.manifest.json`);
    return key;
  } catch {
    // not made yet
  }
  log(`backing up bench_large with ${codec} (once; cached)`);
  await Deno.remove(`${dir}/${key}`).catch(() => {});
  await runBackup({
    connection: { host: pg.socketDir, port: pg.port, user: "postgres", database: "bench_large" },
    store: new LocalStore({ path: dir }),
    key,
    compression: codec,
    toolDirs: [BIN],
  });
  return key;
}

/** Runs `f` against a new empty database, checks the restored row count, drops it. */
async function intoFresh<T extends Timed>(
  pg: Cluster,
  rowCount: string,
  f: (db: string) => Promise<T>,
): Promise<T> {
  const db = `bench_restore_${Date.now()}`;
  await pg.sql(`CREATE DATABASE ${db}`);
  try {
    const r = await f(db);
    const got = await pg.sql("SELECT count(*) FROM events", db);
    if (got !== rowCount) throw new Error(`Restored ${got} rows, expected ${rowCount}`);
    return r;
  } finally {
    await pg.sql(`DROP DATABASE ${db}`);
  }
}

async function engine(
  pg: Cluster,
  o: { dir: string; key: string; db: string },
): Promise<Timed & { processSeconds: number }> {
  const spec: ChildSpec = {
    socketDir: pg.socketDir,
    port: pg.port,
    database: o.db,
    dir: o.dir,
    key: o.key,
  };
  const self = new URL(import.meta.url).pathname;
  const r = await underTime(
    [Deno.execPath(), "run", "-A", self, "--child", JSON.stringify(spec)],
    {},
  );
  const own = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { seconds: number };
  log(
    `  ${own.seconds.toFixed(1)} s in runRestore, ${r.seconds.toFixed(1)} s process, ` +
      `${r.cpu.toFixed(1)} CPU s, ${r.rssMb.toFixed(0)} MB`,
  );
  // The engine's own time, as the backup benchmark measures it: without Deno's start-up and
  // module loading (all storage SDKs), which the process time includes.
  return { ...r, seconds: own.seconds, processSeconds: r.seconds };
}

// Last: main() reads the constants above, which a top-level await earlier would not see yet.
if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: BENCH_OPTIONS });
  if (values.child) await child(JSON.parse(values.child) as ChildSpec);
  else await main(Number(values["rows-large"]));
}
