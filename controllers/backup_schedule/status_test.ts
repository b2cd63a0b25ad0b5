import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import {
  computeScheduleStatus,
  scheduleEvents,
  type ScheduleOutcome,
  verifiedStatus,
  verifyingStatus,
} from "./status.ts";
import { schedule, scheduled } from "./fixtures_test_util.ts";

const at = (s: string) => Date.parse(s);
const NOW = at("2026-01-02T10:00:05Z");
const NEXT = at("2026-01-02T11:00:00Z");

function run(o: Partial<ScheduleOutcome> & Pick<ScheduleOutcome, "action">, s = schedule()) {
  const outcome: ScheduleOutcome = { owned: [], now: NOW, ...o };
  const status = computeScheduleStatus(s, outcome);
  return { status, events: scheduleEvents(s.status, status, outcome) };
}

Deno.test("computeScheduleStatus", async (t) => {
  await t.step("a created slot: Active, columns and the BackupCreated Event", () => {
    const b = scheduled("2026-01-02T10:00:00Z", undefined);
    const { status, events } = run({
      action: {
        kind: "create",
        slot: at("2026-01-02T10:00:00Z"),
        name: b.metadata.name,
        missed: 2,
        next: NEXT,
      },
      owned: [scheduled("2026-01-02T09:00:00Z", "Completed"), b],
    });
    assertEquals(status.phase, "Active");
    assertEquals(status.lastBackup, "nightly-20260102-1000");
    assertEquals(status.lastBackupTime, "2026-01-02T10:00:00Z");
    assertEquals(status.lastScheduleTime, "2026-01-02T10:00:00Z");
    assertEquals(status.nextScheduledTime, "2026-01-02T11:00:00Z");
    assertEquals(status.lastSuccessfulBackup, "nightly-20260102-0900");
    assertEquals(status.managedBackups, 2);
    assertEquals(status.active, ["nightly-20260102-1000"]);
    assertEquals(status.observedGeneration, 1);
    assertEquals(status.conditions?.[0]?.observedGeneration, 1);
    assertEquals(events.map((e) => e.reason), ["MissedSchedule", "BackupCreated"]);
  });
  await t.step("an invalid schedule: Failed, Ready=False InvalidSchedule, a Warning", () => {
    const { status, events } = run({
      action: { kind: "invalid", message: "Invalid cron schedule" },
    });
    assertEquals(status.phase, "Failed");
    const ready = status.conditions?.find((c) => c.type === "Ready");
    assertEquals([ready?.status, ready?.reason], ["False", "InvalidSchedule"]);
    assertEquals(status.nextScheduledTime, undefined);
    assertEquals(events.map((e) => [e.type, e.reason]), [["Warning", "InvalidSchedule"]]);
  });
  await t.step("suspended", () => {
    const { status } = run({ action: { kind: "suspended", next: NEXT } });
    assertEquals(status.phase, "Suspended");
  });
  await t.step("a skipped slot is recorded as handled and reported", () => {
    const { status, events } = run({
      action: {
        kind: "skip",
        slot: at("2026-01-02T09:00:00Z"),
        lateSeconds: 3605,
        missed: 0,
        next: NEXT,
      },
    });
    assertEquals(status.lastScheduleTime, "2026-01-02T09:00:00Z");
    assertEquals(events.map((e) => e.reason), ["SlotSkipped"]);
  });
  await t.step("a newly failed Backup raises BackupFailed once", () => {
    const failed = scheduled("2026-01-02T09:00:00Z", "Failed");
    const first = run({ action: { kind: "idle", next: NEXT }, owned: [failed] });
    assertEquals(first.events.map((e) => e.reason), ["BackupFailed"]);
    const again = run(
      { action: { kind: "idle", next: NEXT }, owned: [failed] },
      schedule({}, { status: first.status }),
    );
    assertEquals(again.events, []);
  });
  await t.step("retention: counts, dry run and Events", () => {
    const { status, events } = run({
      action: { kind: "idle", next: NEXT },
      retention: { appliedAfter: "x", generation: 1, deleted: ["a", "b"], wouldDelete: [] },
    }, schedule({}, { status: { retention: { deletedTotal: 3 } } }));
    assertEquals(status.retention?.deletedTotal, 5);
    assertEquals(status.retention?.appliedGeneration, 1);
    assert(events.some((e) => e.reason === "RetentionDeleted"));
  });
});

Deno.test("verification status", async (t) => {
  const s = schedule({ verify: { every: 1 } }, {
    status: { phase: "Active", verifying: "nightly-20260102-1000" },
  });
  await t.step("verifying is set and cleared without touching the rest", () => {
    const on = verifyingStatus(schedule({}, { status: { phase: "Active" } }), "b1");
    assertEquals(on, { phase: "Active", verifying: "b1" });
    assertEquals(verifyingStatus(s, undefined), { phase: "Active" });
  });
  await t.step(
    "a pass: lastVerification, Verified=True with the generation, verifying gone",
    () => {
      const st = verifiedStatus(s, {
        backup: "nightly-20260102-1000",
        result: "Passed",
        message: "Restored cleanly: 3 tables and 3503 rows, as recorded",
        durationMs: 12_300,
        now: NOW,
      });
      assertEquals(st.verifying, undefined);
      assertEquals(st.lastVerification, {
        time: "2026-01-02T10:00:05Z",
        backup: "nightly-20260102-1000",
        result: "Passed",
        duration: "12s",
        message: "Restored cleanly: 3 tables and 3503 rows, as recorded",
      });
      const c = st.conditions?.find((c) => c.type === "Verified");
      assertEquals([c?.status, c?.reason, c?.observedGeneration], [
        "True",
        "VerificationPassed",
        1,
      ]);
    },
  );
  await t.step("a failure: Verified=False naming the backup", () => {
    const st = verifiedStatus(s, {
      backup: "b2",
      result: "Failed",
      message: "x".repeat(5000),
      durationMs: 1,
      now: NOW,
    });
    const c = st.conditions?.find((c) => c.type === "Verified");
    assertEquals([c?.status, c?.reason], ["False", "VerificationFailed"]);
    assert(c!.message.startsWith('Backup "b2": '));
    assertEquals(st.lastVerification?.message?.length, 1024, "bounded");
  });
});
