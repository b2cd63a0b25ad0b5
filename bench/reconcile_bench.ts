/**
 * Reconcile throughput, idle cost and start-up benchmark (`make bench`; 2000 pairs with
 * `make bench-large`):
 *
 *   scripts/deno run -A bench/reconcile_bench.ts [--pairs 100,500] [--idle-seconds 60]
 *
 * For each N, a fresh test apiserver and PostgreSQL 18 server (tests/helpers, log_statement=all)
 * and the real `dbtether run` (as the tests start it, at log level info):
 *
 * 1. **Throughput.** N Databases and N DatabaseUsers (readwrite on their Database) are created at
 *    once in one namespace (16 creates in flight); the clock runs from the first create until
 *    every object's phase is Ready. Meanwhile pg_stat_activity is sampled for the admin's
 *    sessions (peak connections), and apiserver_request_total (the apiserver's /metrics) is read
 *    before and after; the benchmark's own requests (its creates and readiness lists) are
 *    subtracted. The floor: every statement the admin role sent in that window, read back from
 *    the server log (extended-protocol parameters substituted), replayed in the same order from
 *    one psql process (`\connect` where the database changes) against a second, fresh server of
 *    the same version.
 * 2. **Idle.** With all pairs Ready, nothing is touched for `--idle-seconds`: the operator's CPU
 *    seconds (utime+stime from /proc/<pid>/stat), apiserver requests per minute by verb and
 *    resource, RSS, and whether any Secret, Database or DatabaseUser changed (resourceVersions).
 * 3. **Start-up.** The operator is restarted with the pairs present: seconds until the
 *    "Caches synced" log line and until dbtether_reconcile_total counts a successful reconcile of
 *    every Database and DatabaseUser, with RSS at both points.
 *
 * Results go to bench/RESULTS.md between the `reconcile:begin`/`reconcile:end` markers.
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import { freePort } from "../tests/helpers/free_port.ts";
import { startEnv, type TestEnv } from "../tests/helpers/env.ts";
import { apiserverRequests, type Counts } from "../tests/helpers/apiserver_metrics.ts";
import { startPostgres } from "../tests/helpers/postgres.ts";
import { DatabaseKind } from "../crds/database.ts";
import { DatabaseUserKind } from "../crds/database_user.ts";
import { SecretResource } from "../controllers/runtime/kube.ts";
import { log, writeSection } from "./backup_bench.ts";

const CLOCK_TICKS = 100;
const ADMIN = "dbtether_admin";

function diff(after: Counts, before: Counts, own: Counts = {}): Counts {
  const out: Counts = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0) - (own[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

function fmtCounts(c: Counts, scale = 1): string {
  const rows = Object.entries(c).sort((a, b) => b[1] - a[1]);
  if (!rows.length) return "none";
  return rows.map(([k, v]) => `${k} ${scale === 1 ? v : (v * scale).toFixed(1)}`).join(", ");
}

function total(c: Counts): number {
  return Object.values(c).reduce((a, b) => a + b, 0);
}

interface ProcStats {
  cpuSeconds: number;
  rssMb: number;
}

async function procStats(pid: number): Promise<ProcStats> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuSeconds = (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds, rssMb: rssKb / 1024 };
}

function pair(i: number, ns: string): { db: unknown; user: unknown } {
  const name = `app-${String(i).padStart(4, "0")}`;
  return {
    db: {
      apiVersion: "dbtether.io/v1alpha1",
      kind: "Database",
      metadata: { name, namespace: ns },
      spec: { clusterRef: { name: "bench" }, deletionPolicy: "Delete" },
    },
    user: {
      apiVersion: "dbtether.io/v1alpha1",
      kind: "DatabaseUser",
      metadata: { name: `${name}-user`, namespace: ns },
      spec: { databaseRef: { name }, privileges: "readwrite" },
    },
  };
}

async function inParallel<T>(items: T[], width: number, f: (t: T) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await f(items[next++]!);
  }));
}

type Phased = { metadata: { name: string; resourceVersion?: string }; status?: { phase?: string } };

/** Lists a kind in `ns`; the readiness polls count as the benchmark's own requests. */
async function listIn(env: TestEnv, res: typeof SecretResource, ns: string): Promise<Phased[]> {
  const r = await env.client.list<Phased>(res, { namespace: ns });
  return r.items ?? [];
}

/** Samples the admin's sessions in pg_stat_activity until stopped; returns the peak. */
function connectionSampler(env: TestEnv): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const n = Number(
        (await env.pg.superSql(
          `SELECT count(*) FROM pg_stat_activity WHERE usename = '${ADMIN}'`,
        ).catch(() => "0")).trim(),
      );
      peak = Math.max(peak, n);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The direct-SQL floor

interface Statement {
  database: string;
  sql: string;
}

/** A literal for a logged parameter value (`'...'` as logged, or NULL). */
function parseParams(detail: string): string[] {
  const out: string[] = [];
  const re = /\$(\d+) = (NULL|'((?:[^']|'')*)')/g;
  for (const m of detail.matchAll(re)) out[Number(m[1]) - 1] = m[2]!;
  return out;
}

/**
 * The admin's statements in a server log excerpt, in an order one session can replay: the
 * operator's sessions interleave in the log, so each session's transaction (`begin` to
 * `commit`/`rollback`) is kept together and placed where it ended; statements outside a
 * transaction stay where they were. Extended-protocol lines (`execute <unnamed>: ... $1`
 * followed by `DETAIL:  Parameters: $1 = '...'`) get their parameters substituted as literals.
 */
export function statementsOf(logText: string): Statement[] {
  const out: Statement[] = [];
  const prefix = /^\S+ \S+ \S+ \[(\d+)\] (\S*)@(\S*) \[[^\]]*\] (\w+): {2}(.*)$/;
  const open = new Map<string, Statement[]>();
  let current: (Statement & { pid: string }) | undefined;
  let continues = false;
  const flush = () => {
    const c = current;
    current = undefined;
    if (!c?.sql.trim()) return;
    const word = c.sql.trim().toLowerCase().replace(/;$/, "");
    const tx = open.get(c.pid);
    const st = { database: c.database, sql: c.sql };
    if (word === "begin" || word.startsWith("begin ")) open.set(c.pid, [st]);
    else if (tx) {
      tx.push(st);
      if (word === "commit" || word === "rollback") {
        out.push(...tx);
        open.delete(c.pid);
      }
    } else out.push(st);
  };
  for (const line of logText.split("\n")) {
    const m = prefix.exec(line);
    if (!m) {
      if (current && continues && line.startsWith("\t")) current.sql += `\n${line.slice(1)}`;
      continue;
    }
    const [, pid, user, database, level, rest] = m;
    continues = false;
    if (level === "DETAIL" && current && rest!.startsWith("Parameters: ")) {
      const params = parseParams(rest!);
      current.sql = current.sql.replace(/\$(\d+)/g, (s, n) => params[Number(n) - 1] ?? s);
      continue;
    }
    if (level !== "LOG") continue;
    flush();
    const stmt = /^(?:statement|execute [^:]*): ([\s\S]*)$/.exec(rest!);
    if (stmt && user === ADMIN) {
      current = { pid: pid!, database: database!, sql: stmt[1]! };
      continues = true;
    }
  }
  flush();
  for (const tx of open.values()) out.push(...tx);
  return out;
}

/** One statement as bench/reconcile_bench.ts keeps it (`--replay` reads it back). */
function floorLine(s: Statement): string {
  return `-- ${s.database}\n${s.sql.trimEnd()};\n`;
}

/** The statements of a file written by {@link floorLine}. */
export function parseFloorFile(text: string): Statement[] {
  const out: Statement[] = [];
  for (const part of text.split(/^-- (\S+)\n/m).slice(1).entries()) {
    const [i, v] = part;
    if (i % 2 === 0) out.push({ database: v, sql: "" });
    else out.at(-1)!.sql = v.replace(/;\n$/, "");
  }
  return out;
}

interface Floor {
  seconds: number;
  statements: number;
  /** Sessions opened. */
  databases: number;
  errors: number;
}

/**
 * Replays the statements in order, one at a time (simple protocol, as the operator sends DDL),
 * against a fresh server of the same major: one client, with a session per database opened on
 * first use and kept (the least recently used closed beyond `FLOOR_SESSIONS`), so the floor pays
 * connection set-up about once per database.
 */
async function floor(
  stmts: Statement[],
  o: { major?: number; keep?: string; sessions?: number },
): Promise<Floor> {
  const max = o.sessions ?? FLOOR_SESSIONS;
  await using pg = await startPostgres({
    ...(o.major ? { major: o.major } : {}),
    extraConf: ["log_statement = 'none'", `max_connections = ${Math.max(100, max + 10)}`],
  });
  if (o.keep) await Deno.writeTextFile(o.keep, stmts.map(floorLine).join(""));
  const sessions = new Map<string, postgres.Sql>();
  let opened = 0;
  const session = async (database: string) => {
    let s = sessions.get(database);
    if (s) {
      sessions.delete(database);
      sessions.set(database, s);
      return s;
    }
    if (sessions.size >= max) {
      const [oldest, sql] = sessions.entries().next().value!;
      sessions.delete(oldest);
      await sql.end();
    }
    opened++;
    s = postgres({
      host: pg.host,
      port: pg.port,
      user: pg.admin.user,
      password: pg.admin.password,
      database,
      ssl: "require",
      max: 1,
      prepare: false,
      onnotice: () => {},
    });
    sessions.set(database, s);
    return s;
  };
  const errors: string[] = [];
  const t0 = performance.now();
  const byKind: Counts = {};
  for (const st of stmts) {
    const s0 = performance.now();
    await (await session(st.database)).unsafe(st.sql).catch((e) => errors.push(String(e.message)));
    const kind = st.sql.trim().split(/\s+/, 2).join(" ").toUpperCase();
    byKind[kind] = (byKind[kind] ?? 0) + (performance.now() - s0) / 1000;
  }
  const seconds = (performance.now() - t0) / 1000;
  const top = Object.entries(byKind).sort((a, b) => b[1] - a[1]).slice(0, 6);
  log(`  floor time by statement: ${top.map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(", ")}`);
  await Promise.all([...sessions.values()].map((s) => s.end()));
  if (errors.length) {
    log(`  floor: ${errors.length} errors, first: ${errors.slice(0, 3).join(" | ")}`);
  }
  return { seconds, statements: stmts.length, databases: opened, errors: errors.length };
}

// ---------------------------------------------------------------------------------------------
// One run

interface RunResult {
  n: number;
  postgres: string;
  applySeconds: number;
  readySeconds: number;
  floor: Floor;
  peakConnections: number;
  maxConnections: number;
  reconcileCounts: string;
  requests: Counts;
  idleSeconds: number;
  idleCpu: number;
  idleRequests: Counts;
  idleRssMb: number;
  baseRssMb: number;
  changed: { secrets: number; databases: number; users: number };
  startup: { syncedSeconds: number; verifiedSeconds: number; syncedRssMb: number; rssMb: number };
  startupRequests: Counts;
}

function metricsAddress(logs: string): string | undefined {
  const m = /"msg":"Serving probes and metrics","address":"([^"]+)"/.exec(logs);
  return m?.[1];
}

/** Successful reconciles per controller, from the operator's own /metrics. */
async function reconciles(address: string): Promise<Counts> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const out: Counts = {};
  for (const m of text.matchAll(/^dbtether_reconcile_total\{([^}]*)\} (\S+)$/gm)) {
    const c = /controller="([^"]+)"/.exec(m[1]!)?.[1] ?? "";
    if (/result="success"/.test(m[1]!)) out[c] = (out[c] ?? 0) + Number(m[2]);
  }
  return out;
}

/** Every reconcile by controller and result ("databaseuser requeue 200"), and the error reasons. */
async function reconcilesByResult(address: string): Promise<string> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const out: Counts = {};
  for (const m of text.matchAll(/^dbtether_reconcile_total\{([^}]*)\} (\S+)$/gm)) {
    const c = /controller="([^"]+)"/.exec(m[1]!)?.[1] ?? "";
    const r = /result="([^"]+)"/.exec(m[1]!)?.[1] ?? "";
    if (c === "database" || c === "databaseuser") out[`${c} ${r}`] = Number(m[2]);
  }
  for (const m of text.matchAll(/^dbtether_reconcile_errors_total\{([^}]*)\} (\S+)$/gm)) {
    const c = /controller="([^"]+)"/.exec(m[1]!)?.[1] ?? "";
    const r = /reason="([^"]+)"/.exec(m[1]!)?.[1] ?? "";
    if (c === "database" || c === "databaseuser") out[`${c} ${r}`] = Number(m[2]);
  }
  return fmtCounts(out);
}

/** Reconcile count and mean seconds per controller (dbtether_reconcile_duration_seconds). */
async function reconcileSeconds(address: string): Promise<string> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const get = (what: string) =>
    Object.fromEntries(
      [...text.matchAll(
        new RegExp(
          `^dbtether_reconcile_duration_seconds_${what}\\{controller="([^"]+)"\\} (\\S+)$`,
          "gm",
        ),
      )]
        .map((m) => [m[1]!, Number(m[2])]),
    );
  const sum = get("sum");
  const count = get("count");
  return Object.keys(count).filter((c) => count[c]).map((c) =>
    `${c} ${count[c]} × ${(sum[c]! / count[c]! * 1000).toFixed(0)} ms`
  ).join(", ");
}

async function waitUntil<T>(what: string, f: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

/** Sessions the floor keeps open at once (the test server allows 100 connections). */
const FLOOR_SESSIONS = 20;
const BENCH_DIR = Deno.env.get("DBTETHER_BENCH_DIR") ?? "/var/tmp/dbtether-bench";

/** Info logs, and the metrics server on a loopback port (the tests turn it off). */
function programArgs(extra: string[]): string[] {
  return ["--log-level", "info", "--metrics-bind-address", `127.0.0.1:${freePort()}`, ...extra];
}

async function runOne(n: number, o: { idleSeconds: number; extraArgs: string[] }) {
  log(`N=${n}: starting apiserver, PostgreSQL and dbtether`);
  await using env = await startEnv({ pg: true });
  const maxConnections = 5;
  await env.kube.apply(
    env.clusterManifest("bench", { extraSpec: `  maxConnections: ${maxConnections}\n` }),
  );
  const program = await env.startProgram(programArgs(o.extraArgs));
  await env.waitPhase("dbcluster", "bench", "Connected", { timeoutMs: 120_000 });
  const ns = await env.namespace("bench");
  const baseRssMb = (await procStats(program.process.pid)).rssMb;

  // 1. Throughput
  const before = await apiserverRequests(env);
  const logOffset = (await Deno.stat(env.pg.logFile)).size;
  const sampler = connectionSampler(env);
  const own: Counts = {};
  const bump = (k: string, by = 1) => (own[k] = (own[k] ?? 0) + by);
  const t0 = performance.now();
  const objects = Array.from({ length: n }, (_, i) => pair(i, ns));
  await inParallel(objects, 16, async (p) => {
    await env.client.create(DatabaseKind, { namespace: ns, body: p.db });
    await env.client.create(DatabaseUserKind, { namespace: ns, body: p.user });
  });
  bump("POST databases", n);
  bump("POST databaseusers", n);
  const applySeconds = (performance.now() - t0) / 1000;
  log(`  created ${2 * n} objects in ${applySeconds.toFixed(1)} s`);
  let lastLog = 0;
  await waitUntil("all pairs Ready", async () => {
    const [dbs, users] = [
      await listIn(env, DatabaseKind, ns),
      await listIn(env, DatabaseUserKind, ns),
    ];
    bump("LIST databases");
    bump("LIST databaseusers");
    const ready = (l: Phased[]) => l.filter((x) => x.status?.phase === "Ready").length;
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      log(`  Ready: ${ready(dbs)} databases, ${ready(users)} users`);
    }
    if (ready(dbs) === n && ready(users) === n) return true;
    await new Promise((r) => setTimeout(r, 750));
    return undefined;
  }, 60 * 60_000);
  const readySeconds = (performance.now() - t0) / 1000;
  const peakConnections = await sampler.stop();
  log(`  all Ready after ${readySeconds.toFixed(1)} s; peak ${peakConnections} admin sessions`);
  // Writes still in flight (status of the last objects) land in the window below.
  await new Promise((r) => setTimeout(r, 3000));
  const requests = diff(await apiserverRequests(env), before, own);
  log(`  reconcile time: ${await reconcileSeconds(metricsAddress(program.logs())!)}`);
  const reconcileCounts = await reconcilesByResult(metricsAddress(program.logs())!);
  log(`  reconciles: ${reconcileCounts}`);
  log(`  apiserver requests: ${fmtCounts(requests)}`);
  const logText = new TextDecoder().decode(
    (await Deno.readFile(env.pg.logFile)).subarray(logOffset),
  );
  const stmts = statementsOf(logText);
  log(`  replaying ${stmts.length} statements for the floor`);
  const fl = await floor(stmts, {
    major: env.pg.major,
    keep: `${BENCH_DIR}/reconcile-floor-${n}.sql`,
  });
  log(`  floor ${fl.seconds.toFixed(1)} s (${fl.databases} sessions, ${fl.errors} errors)`);

  // 2. Idle
  const rvs = async () => {
    const m = new Map<string, string>();
    for (
      const [kind, res] of [
        ["secret", SecretResource],
        ["database", DatabaseKind],
        ["user", DatabaseUserKind],
      ] as const
    ) {
      for (const x of await listIn(env, res, ns)) {
        m.set(`${kind}/${x.metadata.name}`, x.metadata.resourceVersion ?? "");
      }
    }
    return m;
  };
  const rv0 = await rvs();
  const idleBefore = await apiserverRequests(env);
  const cpu0 = await procStats(program.process.pid);
  log(`  idle for ${o.idleSeconds} s`);
  await new Promise((r) => setTimeout(r, o.idleSeconds * 1000));
  const cpu1 = await procStats(program.process.pid);
  const idleRequests = diff(await apiserverRequests(env), idleBefore);
  const rv1 = await rvs();
  const changed = { secrets: 0, databases: 0, users: 0 };
  for (const [k, v] of rv0) {
    if (rv1.get(k) === v) continue;
    if (k.startsWith("secret/")) changed.secrets++;
    else if (k.startsWith("database/")) changed.databases++;
    else changed.users++;
  }
  const idleCpu = cpu1.cpuSeconds - cpu0.cpuSeconds;
  log(
    `  idle: ${idleCpu.toFixed(2)} CPU s, ${cpu1.rssMb.toFixed(0)} MB, requests ${
      fmtCounts(idleRequests)
    }, changed ${JSON.stringify(changed)}`,
  );

  // 3. Start-up
  await env.killProgram("SIGTERM");
  const startBefore = await apiserverRequests(env);
  const s0 = performance.now();
  const p2 = await env.startProgram(programArgs(o.extraArgs));
  const address = await waitUntil(
    "the metrics address",
    () => Promise.resolve(metricsAddress(p2.logs())),
    120_000,
  );
  let syncedSeconds = 0;
  let syncedRssMb = 0;
  await waitUntil("caches synced", async () => {
    if (!p2.logs().includes('"msg":"Caches synced"')) return undefined;
    syncedSeconds = (performance.now() - s0) / 1000;
    syncedRssMb = (await procStats(p2.process.pid)).rssMb;
    return true;
  }, 300_000);
  await waitUntil("every object re-verified", async () => {
    const r = await reconciles(address);
    return (r.database ?? 0) >= n && (r.databaseuser ?? 0) >= n ? true : undefined;
  }, 60 * 60_000);
  const verifiedSeconds = (performance.now() - s0) / 1000;
  log(`  reconcile time: ${await reconcileSeconds(address)}`);
  await Deno.writeTextFile(`${BENCH_DIR}/reconcile-operator-${n}.log`, program.logs() + p2.logs());
  const rssMb = (await procStats(p2.process.pid)).rssMb;
  await new Promise((r) => setTimeout(r, 2000));
  const startupRequests = diff(await apiserverRequests(env), startBefore);
  log(
    `  start-up: synced ${syncedSeconds.toFixed(1)} s, re-verified ${
      verifiedSeconds.toFixed(1)
    } s, ${rssMb.toFixed(0)} MB, requests ${fmtCounts(startupRequests)}`,
  );
  const result: RunResult = {
    n,
    postgres:
      `PostgreSQL ${env.pg.version} server (TLS, log_statement=all), psql ${env.pg.clientDir}`,
    applySeconds,
    readySeconds,
    floor: fl,
    peakConnections,
    maxConnections,
    reconcileCounts,
    requests,
    idleSeconds: o.idleSeconds,
    idleCpu,
    idleRequests,
    idleRssMb: cpu1.rssMb,
    baseRssMb,
    changed,
    startup: { syncedSeconds, verifiedSeconds, syncedRssMb, rssMb },
    startupRequests,
  };
  console.log(JSON.stringify(result));
  return result;
}

// ---------------------------------------------------------------------------------------------
// Tables

function tables(results: RunResult[]): string[][][] {
  const throughput = results.map((r) => [
    String(r.n),
    r.applySeconds.toFixed(1),
    r.readySeconds.toFixed(1),
    `${
      r.floor.seconds.toFixed(1)
    } (${r.floor.statements} statements, ${r.floor.databases} sessions)`,
    `${(r.readySeconds / r.floor.seconds).toFixed(2)}×`,
    `${r.peakConnections} / ${r.maxConnections}`,
    r.reconcileCounts,
    String(total(r.requests)),
    fmtCounts(r.requests),
  ]);
  const idle = results.map((r) => [
    String(r.n),
    String(r.idleSeconds),
    r.idleCpu.toFixed(2),
    `${((r.idleCpu / r.idleSeconds) * 100).toFixed(2)}%`,
    (total(r.idleRequests) * 60 / r.idleSeconds).toFixed(1),
    fmtCounts(r.idleRequests, 60 / r.idleSeconds),
    `${r.idleRssMb.toFixed(0)} MB (${r.baseRssMb.toFixed(0)} MB with none)`,
    `${r.changed.secrets} / ${r.changed.databases} / ${r.changed.users}`,
  ]);
  const startup = results.map((r) => [
    String(r.n),
    r.startup.syncedSeconds.toFixed(1),
    r.startup.verifiedSeconds.toFixed(1),
    `${r.startup.syncedRssMb.toFixed(0)} MB`,
    `${r.startup.rssMb.toFixed(0)} MB`,
    fmtCounts(r.startupRequests),
  ]);
  return [throughput, idle, startup];
}

const HEADERS = [
  [
    "N pairs",
    "create s",
    "all Ready s",
    "floor s (direct SQL)",
    "× floor",
    "peak admin sessions / maxConnections",
    "reconciles (Database, DatabaseUser) by result",
    "apiserver requests",
    "by verb and resource",
  ],
  [
    "N pairs",
    "idle s",
    "CPU s",
    "of one core",
    "requests/min",
    "per minute by verb and resource",
    "RSS",
    "changed Secrets / Databases / Users",
  ],
  ["N pairs", "caches synced s", "all re-verified s", "RSS synced", "RSS verified", "requests"],
];

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      pairs: { type: "string", default: "100,500" },
      "idle-seconds": { type: "string", default: "60" },
      large: { type: "boolean", default: false },
      "program-arg": { type: "string", multiple: true, default: [] },
      replay: { type: "string" },
      sessions: { type: "string", default: String(FLOOR_SESSIONS) },
      // Writes the tables under their own markers (e.g. a run with other program flags).
      section: { type: "string" },
    },
  });
  if (values.replay) {
    // The floor alone, from a statement file a run kept, with another session limit.
    const stmts = parseFloorFile(await Deno.readTextFile(values.replay));
    const fl = await floor(stmts, { sessions: Number(values.sessions) });
    console.log(JSON.stringify(fl));
    Deno.exit(0);
  }
  const pairs = values.large ? [2000] : values.pairs.split(",").map(Number);
  const idleSeconds = values.large ? 300 : Number(values["idle-seconds"]);
  await Deno.mkdir(BENCH_DIR, { recursive: true });
  const results: RunResult[] = [];
  for (const n of pairs) {
    results.push(await runOne(n, { idleSeconds, extraArgs: values["program-arg"] }));
  }
  const [t, i, s] = tables(results);
  const command = `scripts/deno run -A bench/reconcile_bench.ts ${
    values.large ? "--large" : `--pairs ${pairs.join(",")} --idle-seconds ${idleSeconds}`
  }${values["program-arg"].map((a) => ` --program-arg=${a}`).join("")}${
    values.section ? ` --section ${values.section}` : ""
  }`;
  const postgres = results[0]!.postgres;
  const marker = values.section
    ? `reconcile-${values.section}`
    : values.large
    ? "reconcile-large"
    : "reconcile";
  await writeSection(`${marker}-throughput`, { header: HEADERS[0]!, rows: t!, command, postgres });
  await writeSection(`${marker}-idle`, { header: HEADERS[1]!, rows: i!, command, postgres });
  await writeSection(`${marker}-startup`, { header: HEADERS[2]!, rows: s!, command, postgres });
}
