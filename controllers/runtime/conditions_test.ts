import { assertEquals } from "../../tests/helpers/assert.ts";
import { jsonEqual, setCondition } from "./conditions.ts";

Deno.test("conditions: transition time moves only on a flip; equality ignores key order", async (t) => {
  const t0 = new Date("2026-01-01T00:00:00Z");
  const t1 = new Date("2026-01-01T01:00:00Z");
  await t.step("lastTransitionTime moves only when the status flips", () => {
    const a = setCondition([], { type: "Ready", status: false, reason: "Pending", message: "x" }, {
      now: t0,
      generation: 1,
    });
    const b = setCondition(a, { type: "Ready", status: false, reason: "Other", message: "y" }, {
      now: t1,
      generation: 2,
    });
    assertEquals(b[0]!.lastTransitionTime, "2026-01-01T00:00:00Z");
    assertEquals(b[0]!.observedGeneration, 2);
    const c = setCondition(b, { type: "Ready", status: true, reason: "Ready", message: "ok" }, {
      now: t1,
    });
    assertEquals(c[0]!.lastTransitionTime, "2026-01-01T01:00:00Z");
  });
  await t.step("jsonEqual ignores key order and undefined fields", () => {
    assertEquals(
      jsonEqual({ a: 1, b: [1, { c: 2 }], d: undefined }, { b: [1, { c: 2 }], a: 1 }),
      true,
    );
    assertEquals(jsonEqual({ a: 1 }, { a: 2 }), false);
  });
});
