import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { PAUSE_ANNOTATION, pauseStateOf, withPause } from "./pause.ts";

function obj(value?: string) {
  return {
    metadata: {
      name: "x",
      ...(value === undefined ? {} : { annotations: { [PAUSE_ANNOTATION]: value } }),
    },
  };
}

Deno.test("pauseStateOf: the documented rule", () => {
  const table: [string | undefined, string][] = [
    [undefined, "active"],
    ["", "active"],
    ["  ", "active"],
    ["active", "active"],
    ["paused", "paused"],
    ["paused ", "paused"],
    ["\tPAUSED\n", "paused"],
    ["pause", "invalid"],
    ["true", "invalid"],
    ["paused; DROP DATABASE x", "invalid"],
    ["p\u0000aused", "invalid"],
    ["x".repeat(10_000), "invalid"],
  ];
  for (const [value, want] of table) {
    assertEquals(pauseStateOf(obj(value)).kind, want, JSON.stringify(value));
  }
});

Deno.test("withPause: the Paused condition", async (t) => {
  const at = { generation: 4, now: new Date("2026-01-01T00:00:00Z") };
  const ready = {
    type: "Ready",
    status: "True" as const,
    reason: "DatabaseReady",
    message: "ok",
    lastTransitionTime: "2025-12-31T00:00:00Z",
    observedGeneration: 3,
  };
  await t.step("paused adds Paused=True and leaves Ready (its generation) alone", () => {
    const c = withPause([ready], { kind: "paused" }, at);
    assertEquals(c.find((x) => x.type === "Ready"), ready);
    const p = c.find((x) => x.type === "Paused")!;
    assertEquals([p.status, p.reason, p.observedGeneration], ["True", "ReconcilePaused", 4]);
  });
  await t.step("active removes it", () => {
    const c = withPause(withPause([ready], { kind: "paused" }, at), { kind: "active" }, at);
    assertEquals(c, [ready]);
  });
  await t.step("an unknown value: Paused=False, the value quoted and cut", () => {
    const value = `"\n${"y".repeat(500)}`;
    const p = withPause([], { kind: "invalid", value }, at)[0]!;
    assertEquals([p.status, p.reason], ["False", "InvalidPauseValue"]);
    assert(!p.message.includes("\n") && p.message.length < 300, p.message);
    assert(p.message.includes('\\"\\n'), p.message);
  });
});
