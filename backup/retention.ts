/**
 * Which backups a retention policy keeps, with the semantics of restic's `forget`:
 * - `keepLast n` keeps the n newest;
 * - `keepDaily/Weekly/Monthly/Yearly n` keep the newest backup of each of the last n calendar
 *   periods that have a backup (days, ISO weeks Monday to Sunday, months, years, all in the
 *   schedule's time zone), not a rolling window from now;
 * - as restic (0.17 and later), a period rule that still has periods left when it reaches the
 *   oldest backup keeps that one too ("oldest daily"), so a short history is kept whole;
 * - a backup is kept when any rule keeps it (the rules are ORed);
 * - an empty policy (no rule above zero) keeps everything, where restic refuses to act.
 * Beyond restic: a backup dated after `now` is always kept and counts toward no rule, and the
 * newest verified backup is always kept. Pure: the caller decides which backups are
 * candidates (Completed ones with their completion record) and deletes the rest.
 */

/** The rules of a policy; unset or 0 means the rule keeps nothing. */
export interface RetentionPolicy {
  keepLast?: number | undefined;
  keepDaily?: number | undefined;
  keepWeekly?: number | undefined;
  keepMonthly?: number | undefined;
  keepYearly?: number | undefined;
}

/** One backup the policy is applied to. */
export interface RetentionCandidate {
  id: string;
  /** When it was taken (UTC milliseconds). */
  time: number;
  /** A restore test of it passed. */
  verified?: boolean;
}

/** Why a backup is kept. */
export type KeepReason =
  | "last"
  | "daily"
  | "weekly"
  | "monthly"
  | "yearly"
  | "oldest daily"
  | "oldest weekly"
  | "oldest monthly"
  | "oldest yearly"
  | "future"
  | "newest verified"
  | "no policy";

export interface RetentionResult {
  /** Newest first, each with every rule that keeps it. */
  keep: { id: string; reasons: KeepReason[] }[];
  /** Newest first. */
  remove: string[];
}

type Period = "daily" | "weekly" | "monthly" | "yearly";
const PERIODS: readonly Period[] = ["daily", "weekly", "monthly", "yearly"];
const COUNT_OF: Record<Period, keyof RetentionPolicy> = {
  daily: "keepDaily",
  weekly: "keepWeekly",
  monthly: "keepMonthly",
  yearly: "keepYearly",
};

/** Whether a policy has any rule that keeps something (an empty one deletes nothing). */
export function policyIsEmpty(p: RetentionPolicy | undefined): boolean {
  return !p || ([...Object.values(COUNT_OF), "keepLast"] as const).every((k) => !(p[k]! > 0));
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The calendar date of `t` in `timeZone`. */
function localDate(t: number, timeZone: string): { y: number; m: number; d: number } {
  if (timeZone === "UTC") {
    const u = new Date(t);
    return { y: u.getUTCFullYear(), m: u.getUTCMonth() + 1, d: u.getUTCDate() };
  }
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "numeric",
      day: "numeric",
    });
    formatters.set(timeZone, f);
  }
  const part = (type: string) => Number(f.formatToParts(t).find((p) => p.type === type)?.value);
  return { y: part("year"), m: part("month"), d: part("day") };
}

/** The ISO 8601 week (Monday to Sunday) of a calendar date, as `year * 100 + week`. */
export function isoWeek(y: number, m: number, d: number): number {
  const day = new Date(Date.UTC(y, m - 1, d));
  const weekday = (day.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  // The week belongs to the year of its Thursday.
  day.setUTCDate(day.getUTCDate() - weekday + 3);
  const year = day.getUTCFullYear();
  const firstThursday = new Date(Date.UTC(year, 0, 4));
  firstThursday.setUTCDate(firstThursday.getUTCDate() - ((firstThursday.getUTCDay() + 6) % 7) + 3);
  const week = 1 + Math.round((day.getTime() - firstThursday.getTime()) / (7 * 86_400_000));
  return year * 100 + week;
}

/** The period a time falls in, as a comparable number. */
export function periodOf(period: Period, t: number, timeZone: string): number {
  const { y, m, d } = localDate(t, timeZone);
  switch (period) {
    case "daily":
      return y * 10_000 + m * 100 + d;
    case "weekly":
      return isoWeek(y, m, d);
    case "monthly":
      return y * 100 + m;
    case "yearly":
      return y;
  }
}

/** Applies `policy` to `candidates` (any order) at `now` in `timeZone`. */
export function applyRetention(
  candidates: readonly RetentionCandidate[],
  policy: RetentionPolicy | undefined,
  o: { now: number; timeZone: string },
): RetentionResult {
  const sorted = [...candidates].sort((a, b) => b.time - a.time || (a.id < b.id ? 1 : -1));
  const reasons = new Map<string, KeepReason[]>(sorted.map((c) => [c.id, []]));
  const keep = (id: string, r: KeepReason) => reasons.get(id)!.push(r);
  const past = sorted.filter((c) => c.time <= o.now);
  for (const c of sorted) if (c.time > o.now) keep(c.id, "future");
  const verified = past.find((c) => c.verified);
  if (verified) keep(verified.id, "newest verified");
  if (policyIsEmpty(policy)) {
    for (const c of past) keep(c.id, "no policy");
  } else {
    past.slice(0, Math.max(0, policy!.keepLast ?? 0)).forEach((c) => keep(c.id, "last"));
    for (const period of PERIODS) {
      applyPeriod(past, period, policy![COUNT_OF[period]] ?? 0, {
        timeZone: o.timeZone,
        keep,
      });
    }
  }
  const result: RetentionResult = { keep: [], remove: [] };
  for (const c of sorted) {
    const r = reasons.get(c.id)!;
    if (r.length) result.keep.push({ id: c.id, reasons: r });
    else result.remove.push(c.id);
  }
  return result;
}

/** One period rule over the past candidates, newest first. */
function applyPeriod(
  past: readonly RetentionCandidate[],
  period: Period,
  count: number,
  o: { timeZone: string; keep: (id: string, r: KeepReason) => void },
): void {
  let left = count;
  let last: number | undefined;
  past.forEach((c, i) => {
    if (left <= 0) return;
    const p = periodOf(period, c.time, o.timeZone);
    if (p !== last) {
      o.keep(c.id, period);
      last = p;
      left--;
    } else if (i === past.length - 1) {
      // Periods left but no older backup: keep the oldest too (restic's "oldest" rule).
      o.keep(c.id, `oldest ${period}`);
    }
  });
}
