/**
 * Go-style durations ("1h30m", "90s", "500ms"), the format Kubernetes users write in specs
 * (metav1.Duration). Pure.
 */
const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Milliseconds of a Go duration; throws an Error naming the field on bad input. */
export function parseGoDuration(text: string, field = "duration"): number {
  const s = text.trim();
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (!s || consumed !== s.length) {
    throw new Error(`Invalid ${field} "${text}": use a duration such as 30s, 5m or 1h30m`);
  }
  return Math.round(total);
}
