import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { Backup } from "../../crds/backup.ts";
import type { BackupSchedule } from "../../crds/backup_schedule.ts";
import { FAILED_GRACE_MS, planRetention, type RetentionPlan } from "./retention_plan.ts";
import { schedule, scheduled } from "./fixtures_test_util.ts";
import { VERIFIED_ANNOTATION } from "./names.ts";

const at = (s: string) => Date.parse(s);
const NOW = at("2026-01-10T00:00:00Z");
const names = (p: RetentionPlan, k: "expired" | "failed") =>
  p.kind === "apply" ? p[k].map((b) => b.metadata.name) : [];

const hourly = (n: number, phase: "Completed" | "Failed" = "Completed") =>
  Array.from(
    { length: n },
    (_, i) => scheduled(`2026-01-09T${String(10 + i).padStart(2, "0")}:00:00Z`, phase),
  );

function plan(s: BackupSchedule, owned: Backup[], now = NOW) {
  return planRetention(s, { owned, now });
}

Deno.test("planRetention gates", async (t) => {
  const keep2 = schedule({ retention: { keepLast: 2, dryRun: false } });
  await t.step("no successful Backup: retention does not run", () => {
    assertEquals(plan(keep2, hourly(3, "Failed")), { kind: "none", why: "NoSuccess" });
  });
  await t.step("after a success it deletes what the policy no longer keeps", () => {
    const p = plan(keep2, hourly(4));
    assertEquals(names(p, "expired"), ["nightly-20260109-1100", "nightly-20260109-1000"]);
    assert(p.kind === "apply" && p.after === "nightly-20260109-1300");
  });
  await t.step("once applied after that success, a later failure changes nothing", () => {
    const applied = schedule({ retention: { keepLast: 1, dryRun: false } }, {
      status: { retention: { appliedAfter: "nightly-20260109-1100", appliedGeneration: 1 } },
    });
    const owned = [...hourly(2), scheduled("2026-01-09T12:00:00Z", "Failed")];
    assertEquals(plan(applied, owned), { kind: "none", why: "AlreadyApplied" });
  });
  await t.step("a spec change applies the policy again", () => {
    const s = schedule({ retention: { keepLast: 1, dryRun: false } }, {
      status: { retention: { appliedAfter: "nightly-20260109-1100", appliedGeneration: 0 } },
    });
    assertEquals(names(plan(s, hourly(2)), "expired"), ["nightly-20260109-1000"]);
  });
  await t.step("only Completed Backups with their record count; others are never touched", () => {
    const incomplete = scheduled("2026-01-09T14:00:00Z", "Completed", {
      extra: { sha256: undefined as unknown as string },
    });
    delete incomplete.status!.sha256;
    const running = scheduled("2026-01-09T15:00:00Z", "Running");
    const p = plan(schedule({ retention: { keepLast: 1, dryRun: false } }), [
      ...hourly(2),
      incomplete,
      running,
    ]);
    assertEquals(names(p, "expired"), ["nightly-20260109-1000"]);
    assert(p.kind === "apply" && p.after === "nightly-20260109-1100");
  });
  await t.step("Failed Backups go after the grace period, if older than the newest success", () => {
    const old = scheduled("2026-01-01T00:00:00Z", "Failed");
    const recent = scheduled(new Date(NOW - FAILED_GRACE_MS / 2).toISOString(), "Failed");
    const p = plan(keep2, [old, recent, ...hourly(1)]);
    assertEquals(names(p, "failed"), ["nightly-20260101-0000"]);
  });
  await t.step("an empty policy deletes nothing, not even failed Backups", () => {
    const p = plan(schedule(), [scheduled("2026-01-01T00:00:00Z", "Failed"), ...hourly(5)]);
    assertEquals([names(p, "expired"), names(p, "failed")], [[], []]);
  });
  await t.step("dryRun is carried to the runner", () => {
    const p = plan(schedule({ retention: { keepLast: 1, dryRun: true } }), hourly(3));
    assert(p.kind === "apply" && p.dryRun);
    assertEquals(names(p, "expired").length, 2);
  });
  await t.step("days are counted in the schedule's time zone", () => {
    // 22:30 and 23:30 UTC on Jan 9 are Jan 9 and Jan 10 in Berlin: two days, both kept.
    const owned = [
      scheduled("2026-01-09T22:30:00Z", "Completed"),
      scheduled("2026-01-09T23:30:00Z", "Completed"),
    ];
    const berlin = schedule({
      timeZone: "Europe/Berlin",
      retention: { keepDaily: 2, dryRun: false },
    });
    const utc = schedule({ retention: { keepDaily: 1, dryRun: false } });
    assertEquals(names(plan(berlin, owned), "expired"), []);
    assertEquals(names(plan(utc, owned), "expired"), ["nightly-20260109-2230"]);
  });
});

Deno.test("planRetention keeps the newest verified-good Backup", () => {
  const list = hourly(4);
  const mark = (b: Backup, v: string): Backup => ({
    ...b,
    metadata: {
      ...b.metadata,
      annotations: { ...b.metadata.annotations, [VERIFIED_ANNOTATION]: v },
    },
  });
  list[0] = mark(list[0]!, "Passed");
  list[1] = mark(list[1]!, "Passed");
  list[3] = mark(list[3]!, "Failed");
  const p = plan(schedule({ retention: { keepLast: 1, dryRun: false } }), list);
  assertEquals(names(p, "expired"), ["nightly-20260109-1200", "nightly-20260109-1000"]);
  assert(p.kind === "apply");
  assertEquals(p.keep.find((k) => k.name === "nightly-20260109-1100")?.reasons, [
    "newest verified",
  ]);
});
