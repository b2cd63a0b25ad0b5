import { assertEquals } from "../../tests/helpers/assert.ts";
import type { Backup } from "../../crds/backup.ts";
import type { BackupSchedule } from "../../crds/backup_schedule.ts";
import { parseSchedule } from "../../backup/slots.ts";
import { planSlot, recheckAfterMs, type SlotAction, type StorageAccess } from "./plan.ts";
import { schedule, scheduled } from "./fixtures_test_util.ts";

const at = (s: string) => Date.parse(s);

function plan(
  s: BackupSchedule,
  o: {
    now: string;
    owned?: Backup[];
    others?: Backup[];
    storage?: StorageAccess;
    resuming?: boolean;
  },
): SlotAction {
  const owned = o.owned ?? [];
  const all = [...owned, ...(o.others ?? [])];
  return planSlot({
    schedule: s,
    parsed: parseSchedule(s.spec.schedule, s.spec.timeZone ?? "UTC"),
    owned,
    backupNamed: (n) => all.find((b) => b.metadata.name === n),
    storage: o.storage ?? { ok: true },
    now: at(o.now),
    ...(o.resuming ? { resuming: true } : {}),
  });
}

/** A pass at 13:05 just after a pause, the 10:00 slot's Backup done (11, 12, 13 came meanwhile). */
function resumedAt1305(s: BackupSchedule, storage?: StorageAccess): SlotAction {
  return plan(s, {
    now: "2026-01-02T13:05:00Z",
    owned: [scheduled("2026-01-02T10:00:00Z", "Completed")],
    ...(storage ? { storage } : {}),
    resuming: true,
  });
}

/** What {@link resumedAt1305} plans: the 13:00 slot skipped as paused, two missed before it. */
function pauseSkip(next: number): SlotAction {
  const slot = at("2026-01-02T13:00:00Z");
  return { kind: "skip", slot, lateSeconds: 300, missed: 2, next, paused: true };
}

Deno.test("planSlot", async (t) => {
  const H10 = at("2026-01-02T10:00:00Z");
  const H11 = at("2026-01-02T11:00:00Z");
  const cases: [string, SlotAction, SlotAction][] = [
    [
      "the first slot after creation creates its Backup",
      plan(schedule({}, { created: "2026-01-02T09:30:00Z" }), { now: "2026-01-02T10:00:30Z" }),
      { kind: "create", slot: H10, name: "nightly-20260102-1000", missed: 0, next: H11 },
    ],
    [
      "the first pass after a pause skips the slots that came meanwhile, and reports them",
      resumedAt1305(schedule()),
      pauseSkip(at("2026-01-02T14:00:00Z")),
    ],
    [
      "resuming while suspended still records the pause's slot as skipped, then looks again",
      resumedAt1305(schedule({ suspend: true })),
      pauseSkip(at("2026-01-02T13:05:00Z")),
    ],
    [
      "resuming while the storage is refused: the skip first, the refusal on the next pass",
      resumedAt1305(schedule(), { ok: false, reason: "NamespaceNotAllowed", message: "no" }),
      pauseSkip(at("2026-01-02T13:05:00Z")),
    ],
    [
      "resuming with no slot since the last one: nothing until the next",
      plan(schedule(), {
        now: "2026-01-02T10:40:00Z",
        owned: [scheduled("2026-01-02T10:00:00Z", "Completed")],
        resuming: true,
      }),
      { kind: "idle", next: H11 },
    ],
    [
      "no slot since creation: nothing until the next one",
      plan(schedule({}, { created: "2026-01-02T10:20:00Z" }), { now: "2026-01-02T10:30:00Z" }),
      { kind: "idle", next: H11 },
    ],
    [
      "a slot with its Backup already made is done",
      plan(schedule(), {
        now: "2026-01-02T10:40:00Z",
        owned: [scheduled("2026-01-02T10:00:00Z", "Running")],
      }),
      { kind: "idle", next: H11 },
    ],
    [
      "missed slots collapse into the newest one",
      plan(schedule(), {
        now: "2026-01-02T13:05:00Z",
        owned: [scheduled("2026-01-02T10:00:00Z", "Completed")],
      }),
      {
        kind: "create",
        slot: at("2026-01-02T13:00:00Z"),
        name: "nightly-20260102-1300",
        missed: 2,
        next: at("2026-01-02T14:00:00Z"),
      },
    ],
    [
      "status.lastScheduleTime counts as handled (a skipped slot stays skipped)",
      plan(schedule({}, { status: { lastScheduleTime: "2026-01-02T10:00:00Z" } }), {
        now: "2026-01-02T10:50:00Z",
      }),
      { kind: "idle", next: H11 },
    ],
    [
      "beyond startingDeadlineSeconds the slot is skipped",
      plan(schedule({ startingDeadlineSeconds: 300 }), {
        now: "2026-01-02T10:05:01Z",
        owned: [scheduled("2026-01-02T09:00:00Z", "Completed")],
      }),
      { kind: "skip", slot: H10, lateSeconds: 301, missed: 0, next: H11 },
    ],
    [
      "within the deadline it runs",
      plan(schedule({ startingDeadlineSeconds: 300 }), {
        now: "2026-01-02T10:05:00Z",
        owned: [scheduled("2026-01-02T09:00:00Z", "Completed")],
      }),
      { kind: "create", slot: H10, name: "nightly-20260102-1000", missed: 0, next: H11 },
    ],
    [
      "Forbid: waits for the running Backup",
      plan(schedule(), {
        now: "2026-01-02T10:00:10Z",
        owned: [scheduled("2026-01-02T09:00:00Z", "Running")],
      }),
      { kind: "wait", slot: H10, running: ["nightly-20260102-0900"], next: H11 },
    ],
    [
      "Allow: runs beside it",
      plan(schedule({ concurrencyPolicy: "Allow" }), {
        now: "2026-01-02T10:00:10Z",
        owned: [scheduled("2026-01-02T09:00:00Z", "Pending")],
      }),
      { kind: "create", slot: H10, name: "nightly-20260102-1000", missed: 0, next: H11 },
    ],
    [
      "Replace: deletes the running one first",
      plan(schedule({ concurrencyPolicy: "Replace" }), {
        now: "2026-01-02T10:00:10Z",
        owned: [scheduled("2026-01-02T09:00:00Z", undefined)],
      }),
      {
        kind: "replace",
        slot: H10,
        name: "nightly-20260102-1000",
        running: ["nightly-20260102-0900"],
        missed: 0,
        next: H11,
      },
    ],
    [
      "a Backup of the slot's name that another owner holds is never adopted",
      plan(schedule(), {
        now: "2026-01-02T10:00:10Z",
        owned: [scheduled("2026-01-02T09:00:00Z", "Completed")],
        others: [scheduled("2026-01-02T10:00:00Z", "Completed", { owner: "someone-else" })],
      }),
      { kind: "taken", slot: H10, name: "nightly-20260102-1000", next: H11 },
    ],
    [
      "storage not allowed: blocked at once, nothing created",
      plan(schedule(), {
        now: "2026-01-02T10:00:10Z",
        owned: [scheduled("2026-01-02T09:00:00Z", "Completed")],
        storage: { ok: false, reason: "NamespaceNotAllowed", message: "no" },
      }),
      { kind: "blocked", reason: "NamespaceNotAllowed", message: "no", next: H11 },
    ],
    [
      "suspended: nothing, next slot still reported",
      plan(schedule({ suspend: true }), { now: "2026-01-02T10:00:10Z" }),
      { kind: "suspended", next: H11 },
    ],
    [
      "an invalid expression is reported with the parser's message",
      plan(schedule({ schedule: "0 25 * * *" }), { now: "2026-01-02T10:00:10Z" }),
      {
        kind: "invalid",
        message: 'Invalid cron schedule "0 25 * * *": CronPattern: Invalid value for hour: 25',
      },
    ],
    [
      "an unknown time zone too",
      plan(schedule({ timeZone: "Europe/Atlantis" }), { now: "2026-01-02T10:00:10Z" }),
      {
        kind: "invalid",
        message: 'Unknown time zone "Europe/Atlantis": use an IANA name such as Europe/Berlin',
      },
    ],
    [
      "slots follow the time zone: 02:30 Berlin on the spring-forward day is 01:00 UTC",
      plan(
        schedule({ schedule: "30 2 * * *", timeZone: "Europe/Berlin" }, {
          created: "2026-03-28T12:00:00Z",
        }),
        { now: "2026-03-29T01:00:05Z" },
      ),
      {
        kind: "create",
        slot: at("2026-03-29T01:00:00Z"),
        name: "nightly-20260329-0100",
        missed: 0,
        next: at("2026-03-30T00:30:00Z"),
      },
    ],
  ];
  for (const [name, got, want] of cases) {
    await t.step(name, () => assertEquals(got, want));
  }
});

Deno.test("recheckAfterMs: at the next slot, never for an invalid schedule", () => {
  const now = at("2026-01-02T10:00:30Z");
  assertEquals(recheckAfterMs({ kind: "idle", next: now + 5000 }, now), 5000);
  assertEquals(recheckAfterMs({ kind: "invalid", message: "x" }, now), undefined);
});
