/**
 * Backup throughput and memory benchmark (`make bench`):
 *
 *   scripts/deno run -A bench/backup_bench.ts [--rows-large N] [--rows-small N] [--no-s3]
 *
 * Keeps a PostgreSQL cluster with two generated databases in a cache directory
 * ($DBTETHER_BENCH_DIR, default /var/tmp/dbtether-bench; generated once, reused), then measures
 * in one run, on the large database: `pg_dump > /dev/null` (the floor), `pg_dump | gzip -6`,
 * `pg_dump | pigz -6`, `pg_dump | zstd -3 -T0`, and dbtether's engine with gzip and zstd to
 * local storage and to MinIO (S3); and dbtether's peak RSS on both databases. Every run is
 * wrapped in /usr/bin/time for CPU seconds (user + system of the whole pipeline, pg_dump
 * included; the server's backend not) and the peak RSS of its largest process; each engine
 * run is a separate process that also reports its own VmHWM. Results go to bench/RESULTS.md
 * between the `bench:begin`/`bench:end` markers (the notes around stay).
 *
 * Longer than 400 lines on purpose: the database set-up, the baselines, the measured runs and
 * the table writer belong to one same-run measurement; restore_bench.ts imports what it shares.
 */
import { parseArgs } from "node:util";
import { freePort } from "../tests/helpers/free_port.ts";
import { runBackup } from "../backup/pipeline.ts";
import type { CompressionAlgorithm } from "../backup/compression.ts";
import { LocalStore } from "../storage/local.ts";
import { createStore } from "../storage/factory.ts";
import type { StaticCredentials, StorageLocation } from "../storage/store.ts";
import {
  type CpuSplit,
  sampleThreads,
  serverCpu,
  settledServerCpu,
  splitCells,
  splitHeader,
} from "./cpu_profile.ts";

export const BIN = "/usr/lib/postgresql/15/bin";
const ROOT = new URL("..", import.meta.url).pathname;

interface ChildSpec {
  socketDir: string;
  port: number;
  database: string;
  target: { local: string } | { location: StorageLocation; credentials: StaticCredentials };
  key: string;
  /** S3 multipart tuning (the store's defaults otherwise). */
  s3?: { partSize?: number; queueSize?: number };
  /** runBackup's gzipWorkers (its default otherwise). */
  gzipWorkers?: number;
  /** Default gzip. */
  compression?: CompressionAlgorithm;
  /** The codec's default level otherwise. */
  compressionLevel?: number;
  /** The server's data directory, to attribute its CPU time (cpu_profile.ts). */
  dataDir: string;
  /** Wait for stdin to close before exiting (bench/profile.ts). */
  hold?: boolean;
}

interface ChildResult {
  seconds: number;
  uncompressed: number;
  compressed: number;
  hwmMb: number;
  /** user + system CPU seconds of the process and its children (from /usr/bin/time). */
  cpu?: number;
  /** Where the CPU went, server included. */
  split: CpuSplit & { server: number };
}

/** The engine run, in its own process so its peak RSS is its own. */
async function child(spec: ChildSpec): Promise<void> {
  const store = "local" in spec.target
    ? new LocalStore({ path: spec.target.local })
    : createStore(spec.target.location, {
      credentials: spec.target.credentials,
      ...(spec.s3 ? { s3: spec.s3 } : {}),
    });
  const server0 = serverCpu(spec.dataDir);
  const threads = sampleThreads();
  const t0 = performance.now();
  const r = await runBackup({
    connection: {
      host: spec.socketDir,
      port: spec.port,
      user: "postgres",
      database: spec.database,
    },
    store,
    key: spec.key,
    toolDirs: [BIN],
    ...(spec.gzipWorkers !== undefined ? { gzipWorkers: spec.gzipWorkers } : {}),
    ...(spec.compression ? { compression: spec.compression } : {}),
    ...(spec.compressionLevel ? { compressionLevel: spec.compressionLevel } : {}),
  });
  const seconds = (performance.now() - t0) / 1000;
  const split = { ...threads.stop(), server: (await settledServerCpu(spec.dataDir)) - server0 };
  await store.close();
  const hwm = /VmHWM:\s+(\d+)/.exec(await Deno.readTextFile("/proc/self/status"))?.[1];
  const out: ChildResult = {
    seconds,
    uncompressed: r.manifest.uncompressedSize,
    compressed: r.manifest.compressedSize,
    hwmMb: Number(hwm) / 1024,
    split,
  };
  console.log(JSON.stringify(out));
  // bench/profile.ts takes the profile now, then closes stdin.
  if (spec.hold) await Deno.stdin.read(new Uint8Array(1));
}

interface Options {
  rowsLarge: number;
  rowsSmall: number;
  s3: boolean;
}

/** The `pg_dump | tool` baselines, measured in the same run as the engine. */
const BASELINES = [
  { name: "`pg_dump \\| gzip -6 > file`", pipe: "gzip -6", ext: "gz", codec: "gzip" },
  { name: "`pg_dump \\| pigz -6 > file`", pipe: "pigz -6", ext: "gz", codec: "gzip" },
  { name: "`pg_dump \\| zstd -3 -T0 > file`", pipe: "zstd -q -3 -T0", ext: "zst", codec: "zstd" },
  { name: "`pg_dump \\| zstd -1 -T0 > file`", pipe: "zstd -q -1 -T0", ext: "zst", codec: "zstd" },
] as const;

async function main(opts: Options): Promise<void> {
  const dir = Deno.env.get("DBTETHER_BENCH_DIR") ?? "/var/tmp/dbtether-bench";
  await Deno.mkdir(`${dir}/out`, { recursive: true });
  const pg = await cluster(dir);
  const rows: string[][] = [];
  try {
    await ensureDatabase(pg, "bench_large", opts.rowsLarge);
    await ensureDatabase(pg, "bench_small", opts.rowsSmall);
    const env = pgEnv(pg);
    const dumpCmd = `${BIN}/pg_dump --no-owner --no-privileges bench_large`;
    log("floor: pg_dump > /dev/null");
    const floor = await withServerCpu(pg, () => timed(`${dumpCmd} > /dev/null`, env));
    const base: Record<string, Timed & { size: number; server: number }> = {};
    for (const b of BASELINES) {
      log(`pg_dump | ${b.pipe}`);
      const f = `${dir}/out/large.sql.${b.ext}`;
      const r = await withServerCpu(pg, () => timed(`${dumpCmd} | ${b.pipe} > ${f}`, env));
      base[b.pipe] = { ...r, size: (await Deno.stat(f)).size };
      await Deno.remove(f);
    }
    const results = await engineRuns(pg, dir, opts);
    const large = results.find((x) => x.db === "bench_large")!.r.uncompressed;
    const mbps = (s: number, bytes = large) => (bytes / 1e6 / s).toFixed(0);
    const ratio = (baseline: number, s: number) => `${(baseline / s).toFixed(2)}×`;
    // Rows at zstd level 1 are compared with `zstd -1`, the others with each codec's default.
    const matching = (c: CompressionAlgorithm, level?: number) =>
      base[c === "gzip" ? "pigz -6" : level === 1 ? "zstd -q -1 -T0" : "zstd -q -3 -T0"]!;
    const dash = ["—", "—", "—", "—"];
    rows.push([
      "`pg_dump > /dev/null` (floor)",
      "large",
      mb(large),
      mbps(floor.seconds),
      "—",
      ...dash.slice(0, 3),
      floor.cpu.toFixed(1),
      `${floor.rssMb.toFixed(0)} MB`,
    ]);
    for (const b of BASELINES) {
      const r = base[b.pipe]!;
      rows.push([
        b.name,
        "large",
        mb(large),
        mbps(r.seconds),
        mb(r.size),
        ratio(base["gzip -6"]!.seconds, r.seconds),
        ratio(matching(b.codec, b.pipe.includes("-1 ") ? 1 : undefined).seconds, r.seconds),
        ratio(floor.seconds, r.seconds),
        r.cpu.toFixed(1),
        `${r.rssMb.toFixed(0)} MB`,
      ]);
    }
    for (const { name, db, codec, level, r } of results) {
      const isLarge = db === "bench_large";
      rows.push([
        name,
        isLarge ? "large" : "small",
        mb(r.uncompressed),
        mbps(r.seconds, r.uncompressed),
        mb(r.compressed),
        isLarge ? ratio(base["gzip -6"]!.seconds, r.seconds) : "—",
        isLarge ? ratio(matching(codec, level).seconds, r.seconds) : "—",
        isLarge ? ratio(floor.seconds, r.seconds) : "—",
        r.cpu?.toFixed(1) ?? "—",
        `${r.hwmMb.toFixed(0)} MB`,
      ]);
    }
    const command = `scripts/deno run -A bench/backup_bench.ts --rows-large ${opts.rowsLarge} ` +
      `--rows-small ${opts.rowsSmall}${opts.s3 ? "" : " --no-s3"}`;
    await writeSection("bench", { header: BACKUP_HEADER, rows, command });
    await writeSection("bench-cpu", {
      header: ["pipeline", "db", "wall s", ...splitHeader(CORES)],
      rows: cpuRows(floor, base, results),
      command,
    });
  } finally {
    await pg.stop();
  }
}

const CORES = navigator.hardwareConcurrency;

/** Runs `f` and adds the server's CPU seconds meanwhile. */
export async function withServerCpu<T>(pg: Cluster, f: () => Promise<T>) {
  const s0 = serverCpu(pg.dataDir);
  const r = await f();
  return { ...r, server: (await settledServerCpu(pg.dataDir)) - s0 };
}

/**
 * The CPU attribution table: a shell baseline's tools are all "pg tool" (pg_dump and the
 * compressor), the engine's are split by thread.
 */
function cpuRows(
  floor: Timed & { server: number },
  base: Record<string, Timed & { server: number }>,
  results: EngineResult[],
): string[][] {
  const shell = (name: string, r: Timed & { server: number }) => [
    name,
    "large",
    r.seconds.toFixed(1),
    ...splitCells(
      { main: 0, workers: 0, v8: 0, io: 0, other: 0, tools: r.cpu, server: r.server },
      r.seconds,
      CORES,
    ),
  ];
  return [
    shell("`pg_dump > /dev/null` (floor)", floor),
    ...BASELINES.map((b) => shell(b.name, base[b.pipe]!)),
    ...results.map(({ name, db, r }) => [
      name,
      db === "bench_large" ? "large" : "small",
      r.seconds.toFixed(1),
      ...splitCells(r.split, r.seconds, CORES),
    ]),
  ];
}

const BACKUP_HEADER = [
  "pipeline",
  "db",
  "plain dump",
  "MB/s of dump",
  "stored",
  "× gzip -6",
  "× same-codec baseline",
  "× floor",
  "CPU s",
  "peak RSS",
];

/** libpq's environment for the bench cluster. */
export function pgEnv(pg: Cluster): Record<string, string> {
  return { PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: "postgres" };
}

interface EngineResult {
  name: string;
  db: string;
  codec: CompressionAlgorithm;
  level?: number;
  r: ChildResult;
}

async function engineRuns(pg: Cluster, dir: string, opts: Options): Promise<EngineResult[]> {
  // The operator runs with --max-semi-space-size=1 (see docs/design/in_process_backups.md).
  const SEMI = ["--v8-flags=--max-semi-space-size=1"];
  const local = { local: `${dir}/out` };
  // [row name, database, target, codec, gzip workers and level (defaults when undefined)]
  type Run = [string, string, ChildSpec["target"], CompressionAlgorithm, number?, number?] | [
    string,
    string,
    ChildSpec["target"],
    CompressionAlgorithm,
    number | undefined,
    number,
  ];
  const runs: Run[] = [
    ["dbtether gzip → local", "bench_large", local, "gzip"],
    ["dbtether gzip → local", "bench_small", local, "gzip"],
    ["dbtether gzip → local, on the main thread", "bench_large", local, "gzip", 0],
    ["dbtether zstd → local", "bench_large", local, "zstd"],
    ["dbtether zstd → local", "bench_small", local, "zstd"],
    ["dbtether zstd → local, on the main thread", "bench_large", local, "zstd", 0],
    ["dbtether zstd level 1 → local", "bench_large", local, "zstd", undefined, 1],
  ];
  let minio: AsyncDisposable | undefined;
  if (opts.s3) {
    const { startMinio, MINIO_USER, MINIO_PASSWORD } = await import(
      "../tests/helpers/storage_servers.ts"
    );
    const m = await startMinio();
    minio = m;
    await m.createBucket("bench");
    const target = {
      location: m.location("bench"),
      credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD },
    };
    runs.push(["dbtether gzip → S3 (MinIO)", "bench_large", target, "gzip"]);
    runs.push(["dbtether zstd → S3 (MinIO)", "bench_large", target, "zstd"]);
    runs.push(["dbtether zstd → S3 (MinIO)", "bench_small", target, "zstd"]);
  }
  const results: EngineResult[] = [];
  try {
    for (const [name, db, target, codec, gzipWorkers, level] of runs) {
      log(`${name} (${db})`);
      const key = `bench/${db}-${Date.now()}.sql.${codec === "gzip" ? "gz" : "zst"}`;
      const spec: ChildSpec = {
        socketDir: pg.socketDir,
        port: pg.port,
        database: db,
        target,
        key,
        compression: codec,
        dataDir: pg.dataDir,
      };
      if (gzipWorkers !== undefined) spec.gzipWorkers = gzipWorkers;
      if (level !== undefined) spec.compressionLevel = level;
      const r = await engine(spec, SEMI);
      results.push({ name, db, codec, r, ...(level !== undefined ? { level } : {}) });
      if ("local" in target) {
        await Deno.remove(`${target.local}/${key}`).catch(() => {});
        await Deno.remove(`${target.local}/${key}.manifest.json`).catch(() => {});
      }
    }
  } finally {
    await minio?.[Symbol.asyncDispose]();
  }
  return results;
}

export function log(msg: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

export function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(0)} MB`;
}

async function engine(spec: ChildSpec, flags: string[]): Promise<ChildResult> {
  const self = new URL(import.meta.url).pathname;
  const { stdout, cpu } = await underTime(
    [Deno.execPath(), "run", "-A", ...flags, self, "--child", JSON.stringify(spec)],
    {},
  );
  const r = { ...JSON.parse(stdout.trim().split("\n").at(-1)!), cpu } as ChildResult;
  log(`  ${JSON.stringify(r)}`);
  return r;
}

/** Wall seconds, CPU seconds (user + system, children included) and the largest peak RSS. */
export interface Timed {
  seconds: number;
  cpu: number;
  rssMb: number;
}

/** Runs `argv` under /usr/bin/time; its stdout and what time measured. */
export async function underTime(
  argv: string[],
  env: Record<string, string>,
): Promise<Timed & { stdout: string }> {
  const report = await Deno.makeTempFile({ prefix: "dbtether-bench-time-" });
  try {
    const t0 = performance.now();
    const out = await new Deno.Command("/usr/bin/time", {
      args: ["-f", "%U %S %M", "-o", report, ...argv],
      env,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const seconds = (performance.now() - t0) / 1000;
    if (!out.success) throw new Error(`Command failed (exit ${out.code}): ${argv.join(" ")}`);
    const [user, sys, rssKb] = (await Deno.readTextFile(report)).trim().split("\n").at(-1)!
      .split(" ").map(Number);
    const stdout = new TextDecoder().decode(out.stdout);
    return { seconds, cpu: user! + sys!, rssMb: rssKb! / 1024, stdout };
  } finally {
    await Deno.remove(report).catch(() => {});
  }
}

/** Runs a bash pipeline (pipefail) under /usr/bin/time. */
export async function timed(script: string, env: Record<string, string>): Promise<Timed> {
  const { stdout: _, ...r } = await underTime(["bash", "-o", "pipefail", "-c", script], env);
  log(`  ${r.seconds.toFixed(1)} s, ${r.cpu.toFixed(1)} CPU s, ${r.rssMb.toFixed(0)} MB`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The cached cluster

export interface Cluster {
  socketDir: string;
  dataDir: string;
  port: number;
  sql(query: string, db?: string): Promise<string>;
  stop(): Promise<void>;
}

export async function cluster(dir: string): Promise<Cluster> {
  const data = `${dir}/data`;
  const socketDir = `${dir}/socket`;
  const asPg = Deno.uid() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
  const run = async (cmd: string[], quiet = false) => {
    const [c, ...args] = [...asPg, ...cmd];
    const out = await new Deno.Command(c!, {
      args,
      stdout: quiet ? "null" : "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`${cmd[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return quiet ? "" : new TextDecoder().decode(out.stdout);
  };
  if (Deno.uid() === 0) await run(["true"]); // fail early without runuser
  await Deno.mkdir(socketDir, { recursive: true });
  if (Deno.uid() === 0) {
    await new Deno.Command("chown", { args: ["-R", "postgres:postgres", dir] }).output();
  }
  try {
    await Deno.stat(`${data}/PG_VERSION`);
  } catch {
    log(`initdb in ${data}`);
    await run([
      `${BIN}/initdb`,
      "-D",
      data,
      "-U",
      "postgres",
      "-E",
      "UTF8",
      "--no-locale",
      "--auth-local=trust",
      "--no-sync",
    ], true);
  }
  const port = freePort();
  const conf = [
    `port=${port}`,
    `unix_socket_directories='${socketDir}'`,
    "listen_addresses=''",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "shared_buffers=128MB",
    "max_wal_size=4GB",
  ].map((s) => `-c ${s}`).join(" ");
  await run(
    [`${BIN}/pg_ctl`, "-D", data, "-l", `${dir}/server.log`, "-w", "-o", conf, "start"],
    true,
  );
  const sql = async (query: string, db = "postgres") =>
    (await run([
      `${BIN}/psql`,
      "-X",
      "-q",
      "-A",
      "-t",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      socketDir,
      "-p",
      String(port),
      "-U",
      "postgres",
      "-d",
      db,
      "-c",
      query,
    ])).trim();
  return {
    socketDir,
    dataDir: data,
    port,
    sql,
    stop: () => run([`${BIN}/pg_ctl`, "-D", data, "-m", "fast", "-w", "stop"], true).then(() => {}),
  };
}

/**
 * Rows of ~180 bytes of dump each: ids, an md5 (hex: compresses about 2:1), a timestamp and a
 * note built from a small vocabulary (compresses well), so gzip has realistic work.
 */
export async function ensureDatabase(pg: Cluster, name: string, rows: number): Promise<void> {
  const marker = await pg.sql(
    `SELECT description FROM pg_shdescription d JOIN pg_database b ON b.oid = d.objoid
     WHERE b.datname = '${name}'`,
  );
  if (marker === `rows=${rows}`) return;
  log(`generating ${name} with ${rows} rows (once; cached)`);
  await pg.sql(`DROP DATABASE IF EXISTS ${name}`);
  await pg.sql(`CREATE DATABASE ${name}`);
  await pg.sql(
    `CREATE TABLE events AS SELECT i AS id, md5(i::text) AS h, i % 1000 AS k,
       timestamptz '2026-01-01' + (i % 86400) * interval '1 second' AS at,
       (ARRAY['alpha','bravo','charlie','delta','echo','foxtrot'])[1 + i % 6] || ' ' ||
       repeat(substr(md5((i % 5000)::text), 1, 12) || ' ', 7) ||
       (ARRAY['paid','open','void','refunded'])[1 + (i / 7) % 4] AS note
     FROM generate_series(1, ${rows}) i`,
    name,
  );
  await pg.sql(`COMMENT ON DATABASE ${name} IS 'rows=${rows}'`);
}

// ---------------------------------------------------------------------------------------------
// Results

export async function machine(postgres = "PostgreSQL 15 client and server"): Promise<string> {
  const mem = /MemTotal:\s+(\d+)/.exec(await Deno.readTextFile("/proc/meminfo"))?.[1];
  const cpu = /model name\s+:\s+(.*)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1];
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  return `${navigator.hardwareConcurrency} CPUs (${cpu ?? "unknown"}), ` +
    `${(Number(mem) / 1024 / 1024).toFixed(1)} GiB RAM, load average at the end ${load}, ` +
    `Deno ${Deno.version.deno}, ${postgres}`;
}

/**
 * Replaces the table between the `<marker>:begin`/`<marker>:end` comments of bench/RESULTS.md
 * (appends it when they are missing).
 */
export async function writeSection(
  marker: string,
  p: { header: string[]; rows: string[][]; command: string; postgres?: string },
): Promise<void> {
  const table = [p.header, p.header.map(() => "---"), ...p.rows].map((r) => `| ${r.join(" | ")} |`);
  const section = [
    `<!-- ${marker}:begin (written by bench/; edit outside the markers) -->`,
    `Run ${new Date().toISOString()} — \`${p.command}\``,
    "",
    `Machine: ${await machine(p.postgres)}`,
    "",
    ...table,
    `<!-- ${marker}:end -->`,
  ].join("\n");
  console.log(section);
  const path = `${ROOT}bench/RESULTS.md`;
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    text = "# Benchmark results\n\n";
  }
  const re = new RegExp(`<!-- ${marker}:begin[\\s\\S]*?<!-- ${marker}:end -->`);
  text = re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`;
  await Deno.writeTextFile(path, text);
}

/** The command line of both benchmarks (`make bench` passes one set of options to each). */
export const BENCH_OPTIONS = {
  child: { type: "string" },
  "rows-large": { type: "string", default: "9000000" },
  "rows-small": { type: "string", default: "1800000" },
  "no-s3": { type: "boolean", default: false },
} as const;

// Last: main() reads the constants above, which a top-level await earlier would not see yet.
if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: BENCH_OPTIONS });
  if (values.child) await child(JSON.parse(values.child) as ChildSpec);
  else {
    await main({
      rowsLarge: Number(values["rows-large"]),
      rowsSmall: Number(values["rows-small"]),
      s3: !values["no-s3"],
    });
  }
}
