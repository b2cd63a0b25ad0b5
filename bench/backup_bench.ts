/**
 * Backup throughput and memory benchmark (`make bench`):
 *
 *   scripts/deno run -A bench/backup_bench.ts [--rows-large N] [--rows-small N] [--no-s3]
 *
 * Keeps a PostgreSQL cluster with two generated databases in a cache directory
 * ($DBTETHER_BENCH_DIR, default /var/tmp/dbtether-bench; generated once, reused), then measures
 * in one run, on the large database: `pg_dump > /dev/null` (the floor), `pg_dump | gzip -6`,
 * and dbtether's engine to local storage and to MinIO (S3); and dbtether's peak RSS on both
 * databases. Each engine run is a separate process that reports its own VmHWM. Results go to
 * bench/RESULTS.md between the `bench:begin`/`bench:end` markers (the notes around stay).
 */
import { parseArgs } from "node:util";
import { freePort } from "../tests/helpers/free_port.ts";
import { runBackup } from "../backup/pipeline.ts";
import { LocalStore } from "../storage/local.ts";
import { createStore } from "../storage/factory.ts";
import type { StaticCredentials, StorageLocation } from "../storage/store.ts";

const BIN = "/usr/lib/postgresql/15/bin";
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
}

interface ChildResult {
  seconds: number;
  uncompressed: number;
  compressed: number;
  hwmMb: number;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      child: { type: "string" },
      "rows-large": { type: "string", default: "9000000" },
      "rows-small": { type: "string", default: "1800000" },
      "no-s3": { type: "boolean", default: false },
    },
  });
  if (values.child) await child(JSON.parse(values.child) as ChildSpec);
  else {
    await main({
      rowsLarge: Number(values["rows-large"]),
      rowsSmall: Number(values["rows-small"]),
      s3: !values["no-s3"],
    });
  }
}

/** The engine run, in its own process so its peak RSS is its own. */
async function child(spec: ChildSpec): Promise<void> {
  const store = "local" in spec.target
    ? new LocalStore({ path: spec.target.local })
    : createStore(spec.target.location, {
      credentials: spec.target.credentials,
      ...(spec.s3 ? { s3: spec.s3 } : {}),
    });
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
  });
  const seconds = (performance.now() - t0) / 1000;
  await store.close();
  const hwm = /VmHWM:\s+(\d+)/.exec(await Deno.readTextFile("/proc/self/status"))?.[1];
  const out: ChildResult = {
    seconds,
    uncompressed: r.manifest.uncompressedSize,
    compressed: r.manifest.compressedSize,
    hwmMb: Number(hwm) / 1024,
  };
  console.log(JSON.stringify(out));
}

interface Options {
  rowsLarge: number;
  rowsSmall: number;
  s3: boolean;
}

async function main(opts: Options): Promise<void> {
  const dir = Deno.env.get("DBTETHER_BENCH_DIR") ?? "/var/tmp/dbtether-bench";
  await Deno.mkdir(`${dir}/out`, { recursive: true });
  const pg = await cluster(dir);
  const rows: string[][] = [];
  try {
    await ensureDatabase(pg, "bench_large", opts.rowsLarge);
    await ensureDatabase(pg, "bench_small", opts.rowsSmall);
    const env = { PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: "postgres" };
    const dumpCmd = `${BIN}/pg_dump --no-owner --no-privileges bench_large`;
    log("floor: pg_dump > /dev/null");
    const floor = await timed(`${dumpCmd} > /dev/null`, env);
    log("pg_dump | gzip -6");
    const gz = `${dir}/out/large.sql.gz`;
    const gzip = await timed(`${dumpCmd} | gzip -6 > ${gz}`, env);
    const gzipSize = (await Deno.stat(gz)).size;
    await Deno.remove(gz);
    // The operator runs with --max-semi-space-size=1 (see docs/design/in_process_backups.md):
    // measured both ways.
    const SEMI = ["--v8-flags=--max-semi-space-size=1"];
    const local = { local: `${dir}/out` };
    // [row name, database, target, V8 flags, gzip workers (default when undefined)]
    type Run = [string, string, ChildSpec["target"], string[], number?];
    const runs: Run[] = [
      ["dbtether → local", "bench_large", local, SEMI],
      ["dbtether → local", "bench_small", local, SEMI],
      ["dbtether → local, 1 gzip worker", "bench_large", local, SEMI, 1],
      ["dbtether → local, gzip on the main thread", "bench_large", local, SEMI, 0],
      ["dbtether → local, default V8 flags", "bench_large", local, []],
      ["dbtether → local, default V8 flags", "bench_small", local, []],
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
      runs.push(["dbtether → S3 (MinIO)", "bench_large", target, SEMI]);
      runs.push(["dbtether → S3 (MinIO)", "bench_small", target, SEMI]);
      runs.push(["dbtether → S3 (MinIO), gzip on the main thread", "bench_large", target, SEMI, 0]);
    }
    const results: { name: string; db: string; r: ChildResult }[] = [];
    try {
      for (const [name, db, target, flags, gzipWorkers] of runs) {
        log(`${name} (${db})`);
        const key = `bench/${db}-${Date.now()}.sql.gz`;
        const spec: ChildSpec = {
          socketDir: pg.socketDir,
          port: pg.port,
          database: db,
          target,
          key,
        };
        if (gzipWorkers !== undefined) spec.gzipWorkers = gzipWorkers;
        const r = await engine(spec, flags);
        results.push({ name, db, r });
        if ("local" in target) await Deno.remove(`${target.local}/${key}`).catch(() => {});
      }
    } finally {
      await minio?.[Symbol.asyncDispose]();
    }
    const large = results.find((x) => x.db === "bench_large")!.r.uncompressed;
    const mbps = (s: number, bytes = large) => (bytes / 1e6 / s).toFixed(0);
    rows.push(["`pg_dump > /dev/null` (floor)", "large", mb(large), mbps(floor), "—", "—", "—"]);
    rows.push([
      "`pg_dump \\| gzip -6 > file`",
      "large",
      mb(large),
      mbps(gzip),
      mb(gzipSize),
      "1.00×",
      "—",
    ]);
    for (const { name, db, r } of results) {
      rows.push([
        name,
        db === "bench_large" ? "large" : "small",
        mb(r.uncompressed),
        mbps(r.seconds, r.uncompressed),
        mb(r.compressed),
        db === "bench_large" ? `${(gzip / r.seconds).toFixed(2)}×` : "—",
        `${r.hwmMb.toFixed(0)} MB`,
      ]);
    }
    await writeResults({ rows, gzipSize, opts });
  } finally {
    await pg.stop();
  }
}

function log(msg: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(0)} MB`;
}

async function engine(spec: ChildSpec, flags: string[]): Promise<ChildResult> {
  const self = new URL(import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...flags, self, "--child", JSON.stringify(spec)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`Engine run failed: exit ${out.code}`);
  const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
  log(`  ${JSON.stringify(r)}`);
  return r;
}

async function timed(script: string, env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command("bash", {
    args: ["-o", "pipefail", "-c", script],
    env,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`Command failed: ${script}`);
  const s = (performance.now() - t0) / 1000;
  log(`  ${s.toFixed(1)} s`);
  return s;
}

// ---------------------------------------------------------------------------------------------
// The cached cluster

interface Cluster {
  socketDir: string;
  port: number;
  sql(query: string, db?: string): Promise<string>;
  stop(): Promise<void>;
}

async function cluster(dir: string): Promise<Cluster> {
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
    port,
    sql,
    stop: () => run([`${BIN}/pg_ctl`, "-D", data, "-m", "fast", "-w", "stop"], true).then(() => {}),
  };
}

/**
 * Rows of ~180 bytes of dump each: ids, an md5 (hex: compresses about 2:1), a timestamp and a
 * note built from a small vocabulary (compresses well), so gzip has realistic work.
 */
async function ensureDatabase(pg: Cluster, name: string, rows: number): Promise<void> {
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

async function machine(): Promise<string> {
  const mem = /MemTotal:\s+(\d+)/.exec(await Deno.readTextFile("/proc/meminfo"))?.[1];
  const cpu = /model name\s+:\s+(.*)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1];
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  return `${navigator.hardwareConcurrency} CPUs (${cpu ?? "unknown"}), ` +
    `${(Number(mem) / 1024 / 1024).toFixed(1)} GiB RAM, load average at the end ${load}, ` +
    `Deno ${Deno.version.deno}, PostgreSQL 15 client and server`;
}

async function writeResults(
  p: { rows: string[][]; gzipSize: number; opts: Options },
): Promise<void> {
  const header = [
    "pipeline",
    "db",
    "plain dump",
    "MB/s of dump",
    "stored",
    "× gzip -6 speed",
    "peak RSS",
  ];
  const table = [header, header.map(() => "---"), ...p.rows].map((r) => `| ${r.join(" | ")} |`);
  const section = [
    "<!-- bench:begin (written by bench/backup_bench.ts; edit outside the markers) -->",
    `Run ${new Date().toISOString()} — \`scripts/deno run -A bench/backup_bench.ts --rows-large ` +
    `${p.opts.rowsLarge} --rows-small ${p.opts.rowsSmall}${p.opts.s3 ? "" : " --no-s3"}\``,
    "",
    `Machine: ${await machine()}`,
    "",
    ...table,
    "<!-- bench:end -->",
  ].join("\n");
  console.log(section);
  const path = `${ROOT}bench/RESULTS.md`;
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    text = "# Backup benchmark results\n\n";
  }
  const re = /<!-- bench:begin[\s\S]*?<!-- bench:end -->/;
  text = re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`;
  await Deno.writeTextFile(path, text);
}
