/**
 * Where a benchmark run's CPU time goes, from /proc (Linux only): per thread group of the
 * measuring process, its reaped children (pg_dump, psql, pg_restore) and the PostgreSQL server
 * (the postmaster and its backends). Used by backup_bench.ts and restore_bench.ts to attribute a
 * run's wall time to a measured bottleneck instead of a guess.
 *
 * Threads are sampled every 100 ms and keep their last sample after they exit, so the
 * compression Workers, which end before the run does, are counted. Clock ticks are converted
 * with the usual USER_HZ of 100.
 */

const HZ = 100;

/** CPU seconds by where they were spent. */
export interface CpuSplit {
  /** The JavaScript main thread: streams, hashing, storage SDK code. */
  main: number;
  /** Web Workers (`worker-N`): compression. */
  workers: number;
  /** V8's platform threads: garbage collection and compilation. */
  v8: number;
  /** Tokio's runtime threads: sockets, files, child-process pipes. */
  io: number;
  /** Anything else in the process. */
  other: number;
  /** Children the process waited for (pg_dump, psql, pg_restore). */
  tools: number;
}

/** utime+stime, and cutime+cstime, of a /proc stat line, in seconds. */
export function parseStat(line: string): { self: number; children: number } {
  // The command name is in parentheses and may hold spaces: fields start after the last ")".
  const rest = line.slice(line.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); utime is field 14, stime 15, cutime 16, cstime 17.
  const f = (n: number) => Number(rest[n - 3]);
  return { self: (f(14) + f(15)) / HZ, children: (f(16) + f(17)) / HZ };
}

/** The group a thread's `comm` belongs to. */
export function groupOf(comm: string, isMain: boolean): keyof Omit<CpuSplit, "tools"> {
  if (isMain) return "main";
  if (comm.startsWith("worker-")) return "workers";
  if (comm.startsWith("V8 ")) return "v8";
  if (comm.startsWith("tokio")) return "io";
  return "other";
}

function readSafe(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined; // the thread or process has exited
  }
}

/** Samples this process's threads until stopped; returns the split since it started. */
export function sampleThreads(): { stop(): CpuSplit } {
  const pid = Deno.pid;
  const seen = new Map<string, { group: keyof Omit<CpuSplit, "tools">; cpu: number }>();
  const startSelf = parseStat(readSafe(`/proc/${pid}/stat`) ?? "").children;
  const sample = () => {
    let tids: string[] = [];
    try {
      tids = [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) => e.name);
    } catch {
      return;
    }
    for (const tid of tids) {
      const stat = readSafe(`/proc/${pid}/task/${tid}/stat`);
      const comm = readSafe(`/proc/${pid}/task/${tid}/comm`)?.trim();
      if (!stat || comm === undefined) continue;
      const group = groupOf(comm, tid === String(pid));
      seen.set(tid, { group, cpu: parseStat(stat).self });
    }
  };
  const before = new Map<string, number>();
  sample();
  for (const [tid, s] of seen) before.set(tid, s.cpu);
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const split: CpuSplit = { main: 0, workers: 0, v8: 0, io: 0, other: 0, tools: 0 };
      for (const [tid, s] of seen) split[s.group] += s.cpu - (before.get(tid) ?? 0);
      split.tools = parseStat(readSafe(`/proc/${pid}/stat`) ?? "").children - startSelf;
      return split;
    },
  };
}

/**
 * CPU seconds used so far by a PostgreSQL server: the postmaster, its live children and the
 * children it has reaped (a finished backend). Take it before and after a run; the difference
 * is the server's share, when nothing else uses that server meanwhile.
 */
export function serverCpu(dataDir: string): number {
  const pidFile = readSafe(`${dataDir}/postmaster.pid`);
  const postmaster = pidFile?.split("\n")[0]?.trim();
  if (!postmaster) return 0;
  const own = parseStat(readSafe(`/proc/${postmaster}/stat`) ?? "");
  let total = own.self + own.children;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const stat = readSafe(`/proc/${e.name}/stat`);
    if (!stat) continue;
    const ppid = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
    if (ppid === postmaster) total += parseStat(stat).self;
  }
  return total;
}

/**
 * `serverCpu` once a finished backend has been reaped: the postmaster counts it some time after
 * the client disconnects, so read until two readings 200 ms apart agree (2 s at most).
 */
export async function settledServerCpu(dataDir: string): Promise<number> {
  let last = serverCpu(dataDir);
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const now = serverCpu(dataDir);
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** Table cells for a split: each share and the total against `cores` × wall. */
export function splitCells(
  s: CpuSplit & { server: number },
  wall: number,
  cores: number,
): string[] {
  const total = s.main + s.workers + s.v8 + s.io + s.other + s.tools + s.server;
  const f = (n: number) => n.toFixed(1);
  return [
    f(s.server),
    f(s.tools),
    f(s.main),
    f(s.workers),
    f(s.v8 + s.io + s.other),
    f(total),
    `${((100 * total) / (cores * wall)).toFixed(0)}%`,
  ];
}

/** The header cells matching `splitCells`. */
export function splitHeader(cores: number): string[] {
  return [
    "server CPU s",
    "pg tool CPU s",
    "main thread CPU s",
    "workers CPU s",
    "V8 + I/O threads CPU s",
    "total CPU s",
    `of ${cores} cores × wall`,
  ];
}
