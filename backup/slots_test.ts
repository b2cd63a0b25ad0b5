import { assert, assertEquals } from "../tests/helpers/assert.ts";
import { countSlots, parseSchedule, type SlotSchedule } from "./slots.ts";

const iso = (t: number | undefined) => t === undefined ? undefined : new Date(t).toISOString();
const at = (s: string) => Date.parse(s);

function parsed(expr: string, tz?: string): SlotSchedule {
  const p = parseSchedule(expr, tz);
  if (!p.ok) throw new Error(p.message);
  return p.schedule;
}

/** The next `n` slots after `from`, as ISO strings in UTC. */
function following(s: SlotSchedule, from: string, n: number): string[] {
  const out: string[] = [];
  let t: number | undefined = at(from);
  for (let i = 0; i < n; i++) {
    t = s.nextAfter(t!);
    if (t === undefined) break;
    out.push(iso(t)!);
  }
  return out;
}

Deno.test("parseSchedule: invalid input gives the parser's message", async (t) => {
  const cases: [string, string | undefined, RegExp][] = [
    ["61 * * * *", "UTC", /Invalid cron schedule "61 \* \* \* \*": .*minute/],
    ["0 0 * * * *", "UTC", /requires exactly 5 parts/],
    ["every day", "UTC", /Invalid cron schedule/],
    ["0 2 * * *", "Mars/Olympus", /Unknown time zone "Mars\/Olympus"/],
    ["0 2 * * *", "", /Unknown time zone ""/],
  ];
  for (const [expr, tz, want] of cases) {
    await t.step(`${expr} in ${tz}`, () => {
      const p = parseSchedule(expr, tz);
      assert(!p.ok, "expected a refusal");
      assert(want.test(p.message), p.message);
    });
  }
});

Deno.test("slots in UTC: latest at or before, next strictly after", () => {
  const s = parsed("5 * * * *");
  assertEquals(iso(s.latestAtOrBefore(at("2026-01-01T10:05:00Z"))), "2026-01-01T10:05:00.000Z");
  assertEquals(iso(s.latestAtOrBefore(at("2026-01-01T10:04:59Z"))), "2026-01-01T09:05:00.000Z");
  assertEquals(iso(s.nextAfter(at("2026-01-01T10:05:00Z"))), "2026-01-01T11:05:00.000Z");
  assertEquals(
    iso(parsed("@daily").nextAfter(at("2026-01-01T10:05:00Z"))),
    "2026-01-02T00:00:00.000Z",
  );
  assertEquals(
    iso(parsed("@hourly").latestAtOrBefore(at("2026-01-01T10:59:59Z"))),
    "2026-01-01T10:00:00.000Z",
  );
});

Deno.test("slots across DST in Europe/Berlin", async (t) => {
  // 2026-03-29: 02:00 CET jumps to 03:00 CEST. 2026-10-25: 03:00 CEST falls back to 02:00 CET.
  await t.step("a daily 02:30 runs right after the spring gap, once in the autumn repeat", () => {
    const s = parsed("30 2 * * *", "Europe/Berlin");
    assertEquals(following(s, "2026-03-27T12:00:00Z", 3), [
      "2026-03-28T01:30:00.000Z", // 02:30 CET
      "2026-03-29T01:00:00.000Z", // 02:30 does not exist: 03:00 CEST
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
    ]);
    assertEquals(following(s, "2026-10-24T12:00:00Z", 2), [
      "2026-10-25T00:30:00.000Z", // the first 02:30 (CEST); the second one does not run
      "2026-10-26T01:30:00.000Z", // 02:30 CET
    ]);
  });
  await t.step("a daily 01:00 keeps its local time, so its UTC time moves by an hour", () => {
    const s = parsed("0 1 * * *", "Europe/Berlin");
    assertEquals(following(s, "2026-03-28T12:00:00Z", 2), [
      "2026-03-29T00:00:00.000Z",
      "2026-03-29T23:00:00.000Z",
    ]);
  });
  await t.step("an interval job skips the gap and runs both occurrences of the repeat", () => {
    const s = parsed("*/30 * * * *", "Europe/Berlin");
    assertEquals(following(s, "2026-03-29T00:15:00Z", 3), [
      "2026-03-29T00:30:00.000Z", // 01:30 CET
      "2026-03-29T01:00:00.000Z", // 03:00 CEST: 02:00 and 02:30 do not exist
      "2026-03-29T01:30:00.000Z",
    ]);
    assertEquals(following(s, "2026-10-24T23:45:00Z", 5), [
      "2026-10-25T00:00:00.000Z", // 02:00 CEST
      "2026-10-25T00:30:00.000Z", // 02:30 CEST
      "2026-10-25T01:00:00.000Z", // 02:00 CET
      "2026-10-25T01:30:00.000Z", // 02:30 CET
      "2026-10-25T02:00:00.000Z", // 03:00 CET
    ]);
  });
  await t.step("latestAtOrBefore agrees with nextAfter across the gap", () => {
    const s = parsed("30 2 * * *", "Europe/Berlin");
    assertEquals(iso(s.latestAtOrBefore(at("2026-03-29T06:00:00Z"))), "2026-03-29T01:00:00.000Z");
    assertEquals(iso(s.latestAtOrBefore(at("2026-03-29T00:59:59Z"))), "2026-03-28T01:30:00.000Z");
  });
});

Deno.test("slots across DST in America/New_York", () => {
  // 2026-03-08: 02:00 EST jumps to 03:00 EDT; 2026-11-01: 02:00 EDT falls back to 01:00 EST.
  const s = parsed("0 9 * * 1-5", "America/New_York");
  assertEquals(following(s, "2026-03-05T00:00:00Z", 3), [
    "2026-03-05T14:00:00.000Z", // Thu 09:00 EST
    "2026-03-06T14:00:00.000Z", // Fri
    "2026-03-09T13:00:00.000Z", // Mon 09:00 EDT
  ]);
  const h = parsed("30 1 * * *", "America/New_York");
  assertEquals(following(h, "2026-10-31T12:00:00Z", 2), [
    "2026-11-01T05:30:00.000Z", // the first 01:30 (EDT) only
    "2026-11-02T06:30:00.000Z",
  ]);
});

Deno.test("countSlots counts the slots of a downtime, capped", () => {
  const s = parsed("*/15 * * * *");
  assertEquals(
    countSlots(s, { after: at("2026-01-01T10:00:00Z"), upTo: at("2026-01-01T11:00:00Z") }),
    4,
  );
  assertEquals(
    countSlots(s, { after: at("2026-01-01T10:00:00Z"), upTo: at("2026-01-01T10:14:59Z") }),
    0,
  );
  assertEquals(
    countSlots(parsed("* * * * *"), { after: 0, upTo: at("2026-01-01T00:00:00Z"), cap: 50 }),
    50,
  );
});
