/**
 * Cron slot arithmetic for BackupSchedules, on top of croner: parse a schedule in its time
 * zone, the newest slot at or before an instant, the next slot after it, and how many slots a
 * stretch of downtime covered. Slots are instants (UTC milliseconds); the time zone only decides
 * which instants match. Across DST changes croner follows Vixie cron: a fixed-time job (single
 * minute and hour, e.g. `30 2 * * *`) runs once when its local time repeats and right after the
 * gap when its local time does not exist; an interval job (`*\/30 * * * *`) skips the gap and
 * runs on both occurrences of a repeated hour.
 */
import { Cron } from "croner";

/** A parsed schedule, or why it cannot be parsed (the parser's own message). */
export type ParsedSchedule =
  | { ok: true; schedule: SlotSchedule }
  | { ok: false; message: string };

/** A valid schedule in its time zone. */
export interface SlotSchedule {
  readonly expression: string;
  readonly timeZone: string;
  /** The newest slot at or before `at`, or undefined when there is none. */
  latestAtOrBefore(at: number): number | undefined;
  /** The first slot strictly after `at`, or undefined when there is none. */
  nextAfter(at: number): number | undefined;
}

/** Whether `tz` is an IANA time zone this runtime knows. */
export function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Parses a five-field cron expression or descriptor (`@daily`, ...) in time zone `tz`. */
export function parseSchedule(expression: string, tz = "UTC"): ParsedSchedule {
  if (!validTimeZone(tz)) {
    return {
      ok: false,
      message: `Unknown time zone ${JSON.stringify(tz)}: use an IANA name ` +
        "such as Europe/Berlin",
    };
  }
  let cron: Cron;
  try {
    // paused: croner only computes dates here; it never schedules a callback.
    cron = new Cron(expression.trim(), { timezone: tz, mode: "5-part", paused: true });
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    return { ok: false, message: `Invalid cron schedule ${JSON.stringify(expression)}: ${detail}` };
  }
  return {
    ok: true,
    schedule: {
      expression,
      timeZone: tz,
      // croner's previousRuns excludes the reference instant itself; slots fall on whole
      // minutes, so one millisecond later includes a slot exactly at `at`.
      latestAtOrBefore: (at) => cron.previousRuns(1, new Date(at + 1))[0]?.getTime(),
      nextAfter: (at) => cron.nextRun(new Date(at))?.getTime(),
    },
  };
}

/**
 * How many slots lie strictly after `after` and at or before `upTo`, counting at most `cap`
 * (downtime of months on a minutely schedule must not cost millions of steps).
 */
export function countSlots(
  s: SlotSchedule,
  o: { after: number; upTo: number; cap?: number },
): number {
  const cap = o.cap ?? 1000;
  let n = 0;
  let t = s.nextAfter(o.after);
  while (t !== undefined && t <= o.upTo && n < cap) {
    n++;
    t = s.nextAfter(t);
  }
  return n;
}
