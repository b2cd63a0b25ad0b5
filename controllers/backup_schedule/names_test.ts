import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { backupNameForSlot, MAX_NAME, scheduleToken, slotStamp } from "./names.ts";

const DNS_LABELISH = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

Deno.test("backup names: <schedule>-<YYYYMMDD-HHMM> in UTC", async (t) => {
  await t.step("the dbtether form", () => {
    assertEquals(
      backupNameForSlot("nightly", Date.UTC(2026, 2, 29, 1, 30)),
      "nightly-20260329-0130",
    );
    assertEquals(slotStamp(Date.UTC(2026, 11, 31, 23, 59, 59)), "20261231-2359");
  });
  await t.step("a 49-character schedule name is used as it is (63 in all)", () => {
    const name = "a".repeat(49);
    const b = backupNameForSlot(name, 0);
    assertEquals(b, `${name}-19700101-0000`);
    assertEquals(b.length, MAX_NAME);
  });
  await t.step("longer names are cut to 40 and get a hash, so they stay distinct", () => {
    const base = "x".repeat(45) + "-";
    const a = backupNameForSlot(base + "one", 0);
    const b = backupNameForSlot(base + "two", 0);
    assert(a !== b);
    for (const n of [a, b, backupNameForSlot("q".repeat(253), 0)]) {
      assert(n.length <= MAX_NAME, n);
      assert(DNS_LABELISH.test(n), n);
    }
    assertEquals(scheduleToken(base + "one").slice(0, 40), "x".repeat(40));
  });
  await t.step("a cut never leaves a dash before the hash", () => {
    const token = scheduleToken("a".repeat(39) + "-" + "b".repeat(30));
    assert(!token.includes("--"), token);
    assertEquals(token.length, 39 + 1 + 8);
  });
});
