/**
 * A CPU profile of the engine's main thread during one backup or restore (issue 12: the gap to
 * the floor attributed to measured code, not a guess):
 *
 *   scripts/deno run -A bench/profile.ts [--codec zstd|gzip] [--level N] [--restore]
 *
 * Starts the backup (or restore) benchmark's child process under `--inspect-wait`, takes a V8
 * sampling profile of its main isolate through the inspector protocol (Profiler.start/stop over
 * the WebSocket the inspector serves), and prints the functions with the most self time and the
 * same grouped by module. The compression Workers are separate isolates and not in the profile;
 * their CPU is in the benchmark's CPU table. Uses the cached database of the benchmarks. The
 * table goes to bench/RESULTS.md between the `profile-<what>:begin/end` markers.
 */
import { parseArgs } from "node:util";
import { freePort } from "../tests/helpers/free_port.ts";
import { cluster, ensureDatabase, log, writeSection } from "./backup_bench.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time per node id, in ms, from the samples and their time deltas. */
export function selfTimes(p: Profile): Map<number, number> {
  const out = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    out.set(id, (out.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  return out;
}

/** A readable place for a call frame: the file (relative to the repo or the module cache). */
export function placeOf(f: ProfileNode["callFrame"]): string {
  if (!f.url) return "(native)";
  const url = f.url.replace(/^file:\/\/.*?\/(backup|storage|controllers|lib|bench)\//, "$1/")
    .replace(/^.*\/node_modules\/\.deno\/([^/]+)\/.*$/, "npm:$1")
    .replace(/^ext:/, "ext:");
  return url;
}

/** Rows of the top functions by self time, and of the modules. */
export function summarize(
  p: Profile,
  top = 15,
): { functions: string[][]; modules: string[][]; busy: number } {
  const self = selfTimes(p);
  // Shares are of the time the thread was busy: "(idle)" is the isolate waiting for I/O or
  // Workers, and is reported in the header instead.
  const idle = new Set(
    p.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id),
  );
  for (const id of idle) self.delete(id);
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map<string, number>();
  const byModule = new Map<string, number>();
  for (const n of p.nodes) {
    const ms = self.get(n.id) ?? 0;
    if (!ms) continue;
    const place = placeOf(n.callFrame);
    const name = n.callFrame.functionName || "(anonymous)";
    const key = `${name} — ${place}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ""}`;
    byFn.set(key, (byFn.get(key) ?? 0) + ms);
    byModule.set(place, (byModule.get(place) ?? 0) + ms);
  }
  const rows = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, ms]) => [
      k.replaceAll("|", "\\|"),
      (ms / 1000).toFixed(2),
      `${((100 * ms) / total).toFixed(1)}%`,
    ]);
  return { functions: rows(byFn), modules: rows(byModule), busy: total / 1000 };
}

/** A minimal inspector-protocol client over the WebSocket of `--inspect-wait`. */
async function inspector(port: number) {
  let list: { webSocketDebuggerUrl: string }[] = [];
  for (let i = 0; i < 100 && !list.length; i++) {
    try {
      list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const ws = new WebSocket(list[0]!.webSocketDebuggerUrl);
  await new Promise((r, j) => {
    ws.onopen = r;
    ws.onerror = j;
  });
  let next = 1;
  const waiting = new Map<number, (v: unknown) => void>();
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data));
    if (m.id && waiting.has(m.id)) {
      waiting.get(m.id)!(m.result);
      waiting.delete(m.id);
    }
  };
  return {
    send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((r) => waiting.set(id, r as (v: unknown) => void));
    },
    close: () => ws.close(),
  };
}

async function main(o: { codec: "gzip" | "zstd"; level?: number; restore: boolean }) {
  const dir = Deno.env.get("DBTETHER_BENCH_DIR") ?? "/var/tmp/dbtether-bench";
  const rows = 9000000;
  const pg = await cluster(dir);
  const port = freePort();
  const what = o.restore ? `restore-${o.codec}` : `backup-${o.codec}${o.level ?? ""}`;
  try {
    await ensureDatabase(pg, "bench_large", rows);
    const key = `bench/profile-${Date.now()}.sql.${o.codec === "gzip" ? "gz" : "zst"}`;
    const out = `${dir}/out`;
    let script: string;
    let spec: Record<string, unknown>;
    if (o.restore) {
      const file = `bench_large-${rows}.sql.${o.codec === "gzip" ? "gz" : "zst"}`;
      await pg.sql("DROP DATABASE IF EXISTS bench_profile");
      await pg.sql("CREATE DATABASE bench_profile");
      script = new URL("./restore_bench.ts", import.meta.url).pathname;
      spec = {
        socketDir: pg.socketDir,
        port: pg.port,
        database: "bench_profile",
        dir: `${dir}/restore`,
        key: file,
        dataDir: pg.dataDir,
        hold: true,
      };
    } else {
      script = new URL("./backup_bench.ts", import.meta.url).pathname;
      spec = {
        socketDir: pg.socketDir,
        port: pg.port,
        database: "bench_large",
        target: { local: out },
        key,
        compression: o.codec,
        ...(o.level ? { compressionLevel: o.level } : {}),
        dataDir: pg.dataDir,
        hold: true,
      };
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--max-semi-space-size=1",
        `--inspect-wait=127.0.0.1:${port}`,
        script,
        "--child",
        JSON.stringify(spec),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const ins = await inspector(port);
    await ins.send("Profiler.enable");
    await ins.send("Profiler.setSamplingInterval", { interval: 500 });
    await ins.send("Profiler.start");
    await ins.send("Runtime.runIfWaitingForDebugger");
    log(`profiling ${what}`);
    // The child prints its result line, then waits on stdin so the profile can be taken.
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const { profile } = await ins.send<{ profile: Profile }>("Profiler.stop");
    ins.close();
    await child.stdin.close();
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await child.status;
    await Deno.remove(`${out}/${key}`).catch(() => {});
    await Deno.remove(`${out}/${key}.manifest.json`).catch(() => {});
    log(`result: ${text.trim()}`);
    const s = summarize(profile);
    const seconds = (profile.endTime - profile.startTime) / 1e6;
    const args = [
      o.codec === "zstd" ? "" : "--codec gzip",
      o.level ? `--level ${o.level}` : "",
      o.restore ? "--restore" : "",
    ].filter(Boolean).join(" ");
    const command = `scripts/deno run -A bench/profile.ts${args ? ` ${args}` : ""}`;
    await writeSection(`profile-${what}`, {
      header: [
        `main thread: ${seconds.toFixed(1)} s profiled, ${
          s.busy.toFixed(1)
        } s busy; function — place`,
        "self s",
        "of busy",
      ],
      rows: [...s.functions, ["**by module**", "", ""], ...s.modules],
      command,
    });
  } finally {
    await pg.stop();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      codec: { type: "string", default: "zstd" },
      level: { type: "string" },
      restore: { type: "boolean", default: false },
    },
  });
  await main({
    codec: values.codec === "gzip" ? "gzip" : "zstd",
    ...(values.level ? { level: Number(values.level) } : {}),
    restore: values.restore,
  });
}
