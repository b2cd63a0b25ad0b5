import { assert, assertEquals } from "../tests/helpers/assert.ts";
import {
  applyRetention,
  isoWeek,
  type KeepReason,
  periodOf,
  type RetentionCandidate,
  type RetentionPolicy,
} from "./retention.ts";

const at = (s: string) => Date.parse(s);
const NOW = at("2030-01-01T00:00:00Z");

function run(times: string[], policy: RetentionPolicy | undefined, tz = "UTC", now = NOW) {
  const candidates = times.map((t) => ({ id: t, time: at(t) }));
  return applyRetention(candidates, policy, { now, timeZone: tz });
}
const kept = (r: ReturnType<typeof run>) => r.keep.map((k) => k.id).sort();

// restic's documentation: one backup every Sunday for 12 weeks.
const SUNDAYS = [
  "2019-09-01",
  "2019-09-08",
  "2019-09-15",
  "2019-09-22",
  "2019-09-29",
  "2019-10-06",
  "2019-10-13",
  "2019-10-20",
  "2019-10-27",
  "2019-11-03",
  "2019-11-10",
  "2019-11-17",
].map((d) => `${d}T11:00:00Z`);

Deno.test("retention: restic's documented examples", async (t) => {
  await t.step("12 Sundays, keepDaily 4: the last four Sundays stay, 8 go", () => {
    const r = run(SUNDAYS, { keepDaily: 4 });
    assertEquals(kept(r), SUNDAYS.slice(8));
    assertEquals(r.remove.length, 8);
    assert(r.keep.every((k) => k.reasons.join() === "daily"));
  });
  await t.step("daily for 100 years: 7 daily, 5 weekly, 12 monthly, 75 yearly, ORed", () => {
    const times: RetentionCandidate[] = [];
    const start = Date.UTC(1930, 0, 1, 2);
    for (let i = 0; i < 36_525; i++) times.push({ id: String(i), time: start + i * 86_400_000 });
    const now = times.at(-1)!.time + 1;
    const r = applyRetention(times, {
      keepDaily: 7,
      keepWeekly: 5,
      keepMonthly: 12,
      keepYearly: 75,
    }, { now, timeZone: "UTC" });
    const count = (reason: KeepReason) => r.keep.filter((k) => k.reasons.includes(reason)).length;
    assertEquals([count("daily"), count("weekly"), count("monthly"), count("yearly")], [
      7,
      5,
      12,
      75,
    ]);
    // The dailies already hold one or two weeklies, the month ends and year ends overlap.
    assert(
      r.keep.length >= 7 + 3 + 11 + 74 && r.keep.length <= 7 + 4 + 12 + 75,
      `${r.keep.length}`,
    );
    assertEquals(r.keep.length + r.remove.length, times.length);
  });
  await t.step("an empty policy deletes nothing (restic refuses; keepLast 0 is empty)", () => {
    for (const p of [undefined, {}, { keepLast: 0, keepDaily: 0 }]) {
      const r = run(SUNDAYS, p);
      assertEquals(r.remove, []);
      assert(r.keep.every((k) => k.reasons.includes("no policy")));
    }
  });
});

Deno.test("retention rules", async (t) => {
  const days = [
    "2026-01-05T10:00:00Z",
    "2026-01-05T22:00:00Z",
    "2026-01-06T09:00:00Z",
    "2026-01-07T09:00:00Z",
  ];
  const cases: [string, string[], RetentionPolicy, string[], string?][] = [
    ["keepLast keeps the n newest", days, { keepLast: 2 }, days.slice(2)],
    ["keepDaily keeps the newest of each day", days, { keepDaily: 3 }, days.slice(1)],
    [
      "periods count days that have a backup, not days back from now",
      ["2025-01-01T00:00:00Z", "2025-06-01T00:00:00Z", "2026-01-01T00:00:00Z"],
      { keepDaily: 2 },
      ["2025-06-01T00:00:00Z", "2026-01-01T00:00:00Z"],
    ],
    [
      "rules are ORed",
      ["2025-11-10T00:00:00Z", "2025-12-10T00:00:00Z", "2025-12-20T00:00:00Z", ...days],
      { keepLast: 1, keepMonthly: 3 },
      ["2025-11-10T00:00:00Z", "2025-12-20T00:00:00Z", days[3]!],
    ],
    [
      "weeks run Monday to Sunday: Sunday night and Monday morning are two weeks",
      ["2026-01-04T08:00:00Z", "2026-01-04T23:00:00Z", "2026-01-05T01:00:00Z"],
      { keepWeekly: 2 },
      ["2026-01-04T23:00:00Z", "2026-01-05T01:00:00Z"],
    ],
    [
      "periods are in the time zone: 23:30 UTC Sunday is Monday in Berlin",
      ["2026-03-01T20:00:00Z", "2026-03-01T23:30:00Z", "2026-03-02T05:00:00Z"],
      { keepWeekly: 2 },
      ["2026-03-01T20:00:00Z", "2026-03-02T05:00:00Z"],
      "Europe/Berlin",
    ],
    [
      "a period rule with periods left keeps the oldest as well",
      ["2026-01-05T01:00:00Z", "2026-01-05T02:00:00Z", "2026-01-05T03:00:00Z"],
      { keepDaily: 5 },
      ["2026-01-05T01:00:00Z", "2026-01-05T03:00:00Z"],
    ],
    ["keepYearly", ["2024-05-01T00:00:00Z", "2024-12-31T00:00:00Z", "2025-02-01T00:00:00Z"], {
      keepYearly: 2,
    }, ["2024-12-31T00:00:00Z", "2025-02-01T00:00:00Z"]],
  ];
  for (const [name, times, policy, want, tz] of cases) {
    await t.step(name, () => assertEquals(kept(run(times, policy, tz)), [...want].sort()));
  }
  await t.step("a backup dated in the future is kept and counts toward no rule", () => {
    const now = at("2026-01-06T00:00:00Z");
    const r = run([...days.slice(0, 2), "2026-01-09T00:00:00Z"], { keepLast: 1 }, "UTC", now);
    assertEquals(kept(r), ["2026-01-05T22:00:00Z", "2026-01-09T00:00:00Z"]);
    assertEquals(r.keep.find((k) => k.id === "2026-01-09T00:00:00Z")?.reasons, ["future"]);
  });
  await t.step("the newest verified backup is kept whatever the rules say", () => {
    const r = applyRetention(
      days.map((d, i) => ({ id: d, time: at(d), verified: i === 1 })),
      { keepLast: 1 },
      { now: NOW, timeZone: "UTC" },
    );
    assertEquals(kept(r), [days[1]!, days[3]!]);
  });
});

Deno.test("isoWeek and periodOf", () => {
  assertEquals(isoWeek(2026, 1, 1), 202601); // Thursday
  assertEquals(isoWeek(2027, 1, 1), 202653); // Friday: week 53 of 2026
  assertEquals(isoWeek(2024, 12, 30), 202501); // Monday of 2025's first week
  assertEquals(periodOf("daily", at("2026-03-29T22:30:00Z"), "Europe/Berlin"), 20260330);
  assertEquals(periodOf("monthly", at("2026-03-31T22:30:00Z"), "Europe/Berlin"), 202604);
  assertEquals(periodOf("yearly", at("2026-12-31T23:30:00Z"), "America/New_York"), 2026);
});

/** A small seeded generator, so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("retention property: safety over random histories", () => {
  const zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"];
  for (let seed = 1; seed <= 300; seed++) {
    const r = rng(seed);
    const n = 1 + Math.floor(r() * 40);
    const now = at("2026-06-01T00:00:00Z");
    const span = (1 + r() * 400) * 86_400_000;
    const candidates = Array.from({ length: n }, (_, i) => ({
      id: `b${i}`,
      // Mostly past; about one in ten a little in the future.
      time: Math.round(now - span * r() + (r() < 0.1 ? 86_400_000 * r() : 0)),
      verified: r() < 0.2,
    }));
    const pick = () => (r() < 0.4 ? 0 : Math.floor(r() * 6));
    const policy = {
      keepLast: pick(),
      keepDaily: pick(),
      keepWeekly: pick(),
      keepMonthly: pick(),
      keepYearly: pick(),
    };
    const timeZone = zones[seed % zones.length]!;
    const res = applyRetention(candidates, policy, { now, timeZone });
    const ctx = `seed ${seed}`;
    const keptIds = new Set(res.keep.map((k) => k.id));
    assertEquals(keptIds.size + res.remove.length, n, ctx);
    const past = candidates.filter((c) => c.time <= now).sort((a, b) => b.time - a.time);
    if (past[0]) assert(keptIds.has(past[0].id), `${ctx}: the newest backup was deleted`);
    const newestVerified = past.find((c) => c.verified);
    if (newestVerified) assert(keptIds.has(newestVerified.id), `${ctx}: newest verified deleted`);
    for (const c of candidates) {
      if (c.time > now) assert(keptIds.has(c.id), `${ctx}: a future backup was deleted`);
    }
    for (const k of res.keep) {
      assert(k.reasons.length > 0, ctx);
      for (const reason of k.reasons) {
        const why = { id: k.id, reason, candidates, past, newestVerified, policy, now, timeZone };
        assert(justified(why), `${ctx}: ${k.id} ${reason}`);
      }
    }
  }
});

interface Justification {
  id: string;
  reason: KeepReason;
  candidates: RetentionCandidate[];
  /** The candidates at or before now, newest first. */
  past: RetentionCandidate[];
  newestVerified: RetentionCandidate | undefined;
  policy: { [K in keyof RetentionPolicy]-?: number };
  now: number;
  timeZone: string;
}

/** Re-derives a reason to keep from the definition of its rule. */
function justified(j: Justification): boolean {
  const { past, policy, reason } = j;
  const c = j.candidates.find((x) => x.id === j.id)!;
  const idx = past.indexOf(c);
  if (reason === "future") return c.time > j.now;
  if (reason === "newest verified") return c === j.newestVerified;
  if (reason === "no policy") return Object.values(policy).every((v) => v === 0);
  if (reason === "last") return idx >= 0 && idx < policy.keepLast;
  const period = reason.replace("oldest ", "") as "daily" | "weekly" | "monthly" | "yearly";
  const count = {
    daily: policy.keepDaily,
    weekly: policy.keepWeekly,
    monthly: policy.keepMonthly,
    yearly: policy.keepYearly,
  }[period];
  const key = (x: RetentionCandidate) => periodOf(period, x.time, j.timeZone);
  const periods = [...new Set(past.map(key))];
  if (reason.startsWith("oldest ")) return idx === past.length - 1 && periods.length < count;
  const newestInPeriod = past.find((x) => key(x) === key(c)) === c;
  return newestInPeriod && periods.indexOf(key(c)) < count;
}

Deno.test("retention: the worked example of docs/crds/backupschedule.md", () => {
  const nightly = Array.from({ length: 45 }, (_, i) => {
    const t = Date.UTC(2026, 0, 1 + i, 1, 0); // 02:00 in Berlin (CET)
    return { id: new Date(t).toISOString().slice(0, 10), time: t };
  });
  const r = applyRetention(nightly, { keepDaily: 7, keepWeekly: 4, keepMonthly: 3 }, {
    now: Date.UTC(2026, 1, 15),
    timeZone: "Europe/Berlin",
  });
  assertEquals(r.keep.map((k) => `${k.id} ${k.reasons.join(",")}`), [
    "2026-02-14 daily,weekly,monthly",
    "2026-02-13 daily",
    "2026-02-12 daily",
    "2026-02-11 daily",
    "2026-02-10 daily",
    "2026-02-09 daily",
    "2026-02-08 daily,weekly",
    "2026-02-01 weekly",
    "2026-01-31 monthly",
    "2026-01-25 weekly",
    "2026-01-01 oldest monthly",
  ]);
  assertEquals(r.remove.length, 34);
});
