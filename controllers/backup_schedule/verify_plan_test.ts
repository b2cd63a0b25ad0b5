import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { Backup } from "../../crds/backup.ts";
import { parseSchedule } from "../../backup/slots.ts";
import { schedule, scheduled } from "./fixtures_test_util.ts";
import {
  planVerification,
  verificationOf,
  VERIFIED_ANNOTATION,
  VERIFY_RETRY_MS,
} from "./verify_plan.ts";

const verified = (b: Backup, result: string): Backup => ({
  ...b,
  metadata: {
    ...b.metadata,
    annotations: { ...b.metadata.annotations, [VERIFIED_ANNOTATION]: result },
  },
});
const hours = (n: number) =>
  Array.from({ length: n }, (_, i) => scheduled(`2026-03-01T0${i}:00:00Z`, "Completed"));
const name = (p: ReturnType<typeof planVerification>) =>
  p.kind === "verify" ? p.backup.metadata.name : p.kind;
const now = Date.parse("2026-03-01T12:00:00Z");

Deno.test("which backup is due for verification", async (t) => {
  await t.step("no verify: off", () => {
    assertEquals(planVerification(schedule(), { owned: hours(3), now }).kind, "off");
  });
  await t.step("every 1: the newest successful backup, until it is verified", () => {
    const s = schedule({ verify: { every: 1 } });
    const owned = [...hours(2), scheduled("2026-03-01T05:00:00Z", "Failed")];
    assertEquals(name(planVerification(s, { owned, now })), "nightly-20260301-0100");
    const done = [owned[0]!, verified(owned[1]!, "Failed"), owned[2]!];
    assertEquals(planVerification(s, { owned: done, now }).kind, "none");
  });
  await t.step("every 3: after three successes since the last verified one", () => {
    const s = schedule({ verify: { every: 3 } });
    assertEquals(planVerification(s, { owned: hours(2), now }).kind, "none");
    assertEquals(name(planVerification(s, { owned: hours(3), now })), "nightly-20260301-0200");
    const list = hours(5);
    list[2] = verified(list[2]!, "Passed");
    assertEquals(planVerification(s, { owned: list, now }).kind, "none", "two since");
    list.push(scheduled("2026-03-01T07:00:00Z", "Completed"));
    assertEquals(name(planVerification(s, { owned: list, now })), "nightly-20260301-0700");
  });
  await t.step("running and failed backups never count", () => {
    const s = schedule({ verify: { every: 1 } });
    const owned = [
      scheduled("2026-03-01T01:00:00Z", "Running"),
      scheduled("2026-03-01T02:00:00Z", "Failed"),
    ];
    assertEquals(planVerification(s, { owned, now }).kind, "none");
  });
  await t.step("schedule: once per slot after the last verification", () => {
    const s = schedule({ verify: { schedule: "0 6 * * *" } }, { created: "2026-02-27T00:00:00Z" });
    const parsed = parseSchedule("0 6 * * *", "UTC");
    const due = planVerification(s, { owned: hours(3), now, parsed });
    assertEquals(name(due), "nightly-20260301-0200");
    assertEquals(due.kind === "verify" && due.next, Date.parse("2026-03-02T06:00:00Z"));
    const after = schedule({ verify: { schedule: "0 6 * * *" } }, {
      status: { lastVerification: { time: "2026-03-01T06:01:00Z" } },
    });
    const p = planVerification(after, { owned: hours(3), now, parsed });
    assertEquals(p, { kind: "none", next: Date.parse("2026-03-02T06:00:00Z") });
    const fresh = schedule({ verify: { schedule: "0 6 * * *" } }, {
      created: "2026-03-01T07:00:00Z",
    });
    assertEquals(planVerification(fresh, { owned: hours(3), now, parsed }).kind, "none");
  });
  await t.step("a bad verify schedule is invalid, with the parser's message", () => {
    const s = schedule({ verify: { schedule: "99 * * * *" } });
    const p = planVerification(s, { owned: hours(1), now, parsed: parseSchedule("99 * * * *") });
    assert(
      p.kind === "invalid" && p.message.startsWith("spec.verify.schedule: "),
      JSON.stringify(p),
    );
  });
  await t.step("the annotation is read strictly", () => {
    const b = hours(1)[0]!;
    assertEquals(verificationOf(verified(b, "Passed")), "Passed");
    assertEquals(verificationOf(verified(b, "yes")), undefined);
    assertEquals(verificationOf(b), undefined);
  });
  await t.step("an Error marks nothing and is retried after VERIFY_RETRY_MS, in both modes", () => {
    const error = (at: number) => ({
      lastVerification: {
        time: new Date(at).toISOString(),
        backup: "nightly-20260301-0200",
        result: "Error" as const,
      },
    });
    for (const verify of [{ every: 3 }, { schedule: "0 0 1 1 *" }]) {
      const s = schedule({ verify }, { status: error(now - 60_000) });
      const parsed = verify.schedule ? parseSchedule(verify.schedule, "UTC") : undefined;
      const o = { owned: hours(3), ...(parsed ? { parsed } : {}) };
      const soon = planVerification(s, { ...o, now });
      assertEquals(soon, { kind: "none", next: now - 60_000 + VERIFY_RETRY_MS });
      const later = planVerification(s, { ...o, now: now + VERIFY_RETRY_MS });
      assertEquals(name(later), "nightly-20260301-0200", JSON.stringify(verify));
    }
  });
});
