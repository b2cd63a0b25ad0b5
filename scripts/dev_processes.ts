/**
 * Which processes belong to one run of the dev environment, read from /proc. A process is named
 * by its pid *and* its start time (field 22 of /proc/<pid>/stat, in clock ticks since boot), so a
 * pid the kernel reused for an unrelated program is never mistaken for ours.
 */

/** A process of the environment. */
export interface ProcessId {
  pid: number;
  /** Start time in clock ticks since boot. */
  start: number;
}

interface Stat {
  pid: number;
  ppid: number;
  start: number;
}

// /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses, so the
// fields are counted from the last ')'.
function parseStat(text: string): Stat | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const pid = Number(text.slice(0, text.indexOf(" ")));
  const rest = text.slice(close + 2).split(" ");
  // rest[0] is field 3 (state): ppid is field 4, starttime field 22.
  const ppid = Number(rest[1]);
  const start = Number(rest[19]);
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || !Number.isInteger(start)) {
    return undefined;
  }
  return { pid, ppid, start };
}

function readStat(pid: number): Stat | undefined {
  try {
    return parseStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return undefined;
  }
}

function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const s = readStat(Number(e.name));
    if (s) out.push(s);
  }
  return out;
}

/** The process with this pid, if one runs now. */
export function processOf(pid: number): ProcessId | undefined {
  const s = readStat(pid);
  return s && { pid: s.pid, start: s.start };
}

/** Whether `p` still runs (same pid, same start time); zombies count as gone. */
export function alive(p: ProcessId): boolean {
  const s = readStat(p.pid);
  if (!s || s.start !== p.start) return false;
  try {
    const state = Deno.readTextFileSync(`/proc/${p.pid}/stat`);
    return state.slice(state.lastIndexOf(")") + 2, state.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** `roots` and every running descendant of them. */
export function withDescendants(roots: readonly ProcessId[]): ProcessId[] {
  const stats = allStats();
  const found = new Map<number, ProcessId>();
  for (const r of roots) if (alive(r)) found.set(r.pid, r);
  for (let grew = true; grew;) {
    grew = false;
    for (const s of stats) {
      if (!found.has(s.pid) && found.has(s.ppid)) {
        found.set(s.pid, { pid: s.pid, start: s.start });
        grew = true;
      }
    }
  }
  return [...found.values()];
}

/** The command line of a process, for messages. */
export function commandLine(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter(Boolean).join(" ");
  } catch {
    return "?";
  }
}

/** Parses what {@link formatProcesses} wrote; ignores malformed lines. */
export function parseProcesses(text: string): ProcessId[] {
  const out: ProcessId[] = [];
  for (const line of text.split("\n")) {
    const [pid, start] = line.trim().split(" ").map(Number);
    if (Number.isInteger(pid) && Number.isInteger(start) && pid! > 0) {
      out.push({ pid: pid!, start: start! });
    }
  }
  return out;
}

/** One `pid start` line per process. */
export function formatProcesses(ps: readonly ProcessId[]): string {
  return ps.map((p) => `${p.pid} ${p.start}\n`).join("");
}
