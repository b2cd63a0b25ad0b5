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
import type { DumpFormat } from "../backup/dump_command.ts";
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
  withServerCpu,
  writeSection,
} from "./backup_bench.ts";
import {
  type CpuSplit,
  sampleThreads,
  serverCpu,
  settledServerCpu,
  splitCells,
  splitHeader,
} from "./cpu_profile.ts";

interface ChildSpec {
  socketDir: string;
  port: number;
  database: string;
  dir: string;
  key: string;
  dataDir: string;
  /** Wait for stdin to close before exiting (bench/profile.ts). */
  hold?: boolean;
}

/** dbtether's restore, in its own process so its peak RSS is its own. */
async function child(spec: ChildSpec): Promise<void> {
  const server0 = serverCpu(spec.dataDir);
  const threads = sampleThreads();
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
  const seconds = (performance.now() - t0) / 1000;
  const split = { ...threads.stop(), server: (await settledServerCpu(spec.dataDir)) - server0 };
  const hwm = /VmHWM:\s+(\d+)/.exec(await Deno.readTextFile("/proc/self/status"))?.[1];
  console.log(JSON.stringify({ hwmMb: Number(hwm) / 1024, seconds, split }));
  // bench/profile.ts takes the profile now, then closes stdin.
  if (spec.hold) await Deno.stdin.read(new Uint8Array(1));
}

const PSQL = `${BIN}/psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --single-transaction`;
/** pg_restore with the flags dbtether's restore uses (backup/dump_command.ts). */
const PG_RESTORE = `${BIN}/pg_restore --no-password --exit-on-error --no-owner --no-privileges`;
const CORES = navigator.hardwareConcurrency;

type Measured = Timed & { server: number; processSeconds?: number; split?: CpuSplit };

/** What is restored, and how the shell does the same. */
const CASES: {
  codec: CompressionAlgorithm;
  format: DumpFormat;
  baseline: string;
  shell: (file: string, db: string) => string;
}[] = [
  {
    codec: "gzip",
    format: "plain",
    baseline: "`gunzip -c \\| psql`",
    shell: (file, db) => `gunzip -c ${file} | ${PSQL} --dbname=${db}`,
  },
  {
    codec: "zstd",
    format: "plain",
    baseline: "`zstd -dc \\| psql`",
    shell: (file, db) => `zstd -q -dc ${file} | ${PSQL} --dbname=${db}`,
  },
  {
    codec: "gzip",
    format: "custom",
    baseline: "`pg_restore --single-transaction < file`",
    shell: (file, db) => `${PG_RESTORE} --single-transaction --dbname=${db} < ${file}`,
  },
];

async function main(rowsLarge: number): Promise<void> {
  const dir = Deno.env.get("DBTETHER_BENCH_DIR") ?? "/var/tmp/dbtether-bench";
  const out = `${dir}/restore`;
  await Deno.mkdir(out, { recursive: true });
  const pg = await cluster(dir);
  const rows: string[][] = [];
  try {
    await ensureDatabase(pg, "bench_large", rowsLarge);
    const rowCount = await pg.sql("SELECT count(*) FROM events", "bench_large");
    const cpu: string[][] = [];
    for (const c of CASES) {
      const key = await backupOnce(pg, out, { codec: c.codec, format: c.format, rows: rowsLarge });
      const file = `${out}/${key}`;
      const size = (await Deno.stat(file)).size;
      log(`baseline: ${c.baseline}`);
      const base = await intoFresh(pg, rowCount, (db) => shell(pg, c.shell(file, db)));
      const what = c.format === "plain" ? c.codec : "custom archive";
      log(`dbtether restore (${what})`);
      const ours = await intoFresh(pg, rowCount, (db) => engine(pg, { dir: out, key, db }));
      rows.push(row(c.baseline, size, base, base));
      rows.push(row(`dbtether restore (${what})`, size, ours, base));
      cpu.push(cpuRow(c.baseline, base), cpuRow(`dbtether restore (${what})`, ours));
      if (c.format === "custom") {
        // Parallel restore needs a seekable file, and cannot be one transaction: shown apart,
        // against the same stdin baseline.
        log("pg_restore -j 2 from the file");
        const par = await intoFresh(
          pg,
          rowCount,
          (db) => shell(pg, `${PG_RESTORE} --jobs=2 --dbname=${db} ${file}`),
        );
        rows.push(row("`pg_restore -j 2 file` (not one transaction)", size, par, base));
        cpu.push(cpuRow("`pg_restore -j 2 file`", par));
      }
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
    await writeSection("restore-cpu", {
      header: ["pipeline", "wall s", ...splitHeader(CORES)],
      rows: cpu,
      command: `scripts/deno run -A bench/restore_bench.ts --rows-large ${rowsLarge}`,
    });
  } finally {
    await pg.stop();
  }
}

function shell(pg: Cluster, script: string): Promise<Measured> {
  return withServerCpu(pg, () => timed(script, pgEnv(pg)));
}

/** A CPU attribution row: the engine's split by thread, a shell pipeline's tools as one. */
function cpuRow(name: string, r: Measured): string[] {
  const split = r.split ?? { main: 0, workers: 0, v8: 0, io: 0, other: 0, tools: r.cpu };
  return [
    name,
    r.seconds.toFixed(1),
    ...splitCells({ ...split, server: r.server }, r.seconds, CORES),
  ];
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
  o: { codec: CompressionAlgorithm; format: DumpFormat; rows: number },
) {
  const { codec } = o;
  const key = o.format === "custom"
    ? `bench_large-${o.rows}.dump`
    : `bench_large-${o.rows}.sql.${codec === "gzip" ? "gz" : "zst"}`;
  try {
    await Deno.stat(`${dir}/${key}.manifest.json`);
    return key;
  } catch {
    // not made yet
  }
  log(`backing up bench_large, ${o.format}, ${codec} (once; cached)`);
  await Deno.remove(`${dir}/${key}`).catch(() => {});
  await runBackup({
    connection: { host: pg.socketDir, port: pg.port, user: "postgres", database: "bench_large" },
    store: new LocalStore({ path: dir }),
    key,
    compression: codec,
    format: o.format,
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
): Promise<Measured & { processSeconds: number }> {
  const spec: ChildSpec = {
    dataDir: pg.dataDir,
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
  const own = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
    seconds: number;
    split: CpuSplit & { server: number };
  };
  log(
    `  ${own.seconds.toFixed(1)} s in runRestore, ${r.seconds.toFixed(1)} s process, ` +
      `${r.cpu.toFixed(1)} CPU s, ${r.rssMb.toFixed(0)} MB`,
  );
  // The engine's own time, as the backup benchmark measures it: without Deno's start-up and
  // module loading (all storage SDKs), which the process time includes.
  const { server, ...split } = own.split;
  return { ...r, seconds: own.seconds, processSeconds: r.seconds, server, split };
}

// Last: main() reads the constants above, which a top-level await earlier would not see yet.
if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: BENCH_OPTIONS });
  if (values.child) await child(JSON.parse(values.child) as ChildSpec);
  else await main(Number(values["rows-large"]));
}
