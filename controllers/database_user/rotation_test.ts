import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import {
  decideRotation,
  loginRoles,
  MAX_ROTATION_WAIT_MS,
  type RotationInput,
  rotationTarget,
  untilRotation,
} from "./rotation.ts";

const DAY = 86_400_000;
const t0 = Date.UTC(2026, 0, 1);

Deno.test("decideRotation", async (t) => {
  const base: RotationInput = {
    now: t0,
    rotation: undefined,
    updatedAt: t0,
    requested: undefined,
    lastRequest: undefined,
    deletedSecrets: [],
  };
  const cases: [string, Partial<RotationInput>, unknown][] = [
    ["no rotation configured", {}, {}],
    ["days, not yet due", { rotation: { days: 30, strategy: "InPlace" }, now: t0 + DAY }, {
      next: t0 + 30 * DAY,
    }],
    ["days, due", { rotation: { days: 30, strategy: "InPlace" }, now: t0 + 30 * DAY }, {
      reason: "Scheduled",
      next: t0 + 30 * DAY,
    }],
    ["interval", { rotation: { interval: "1h30m", strategy: "InPlace" }, now: t0 }, {
      next: t0 + 90 * 60_000,
    }],
    ["annotation, new value", { requested: "2", lastRequest: "1" }, { reason: "Requested" }],
    ["annotation, handled", { requested: "1", lastRequest: "1" }, {}],
    ["deleted Secret", { deletedSecrets: ["x"] }, { reason: "SecretDeleted" }],
  ];
  for (const [name, input, want] of cases) {
    await t.step(name, () => {
      assertEquals(decideRotation({ ...base, ...input }), want);
    });
  }
});

Deno.test("Alternating switches between the two roles", () => {
  assertEquals(loginRoles("app", true), ["app", "app_b"]);
  assertEquals(rotationTarget({ username: "app", active: undefined, alternating: true }), "app_b");
  assertEquals(rotationTarget({ username: "app", active: "app_b", alternating: true }), "app");
  assertEquals(rotationTarget({ username: "app", active: "app", alternating: false }), "app");
});

Deno.test("untilRotation stays within what a timer can wait", async (t) => {
  const cases: [string, number, number][] = [
    ["due soon", 5_000, 5_000],
    ["overdue: at least 1 s, no busy loop", -60_000, 1_000],
    ["30 days: once a day", 30 * 86_400_000, MAX_ROTATION_WAIT_MS],
  ];
  for (const [name, inMs, want] of cases) {
    await t.step(name, () => {
      assertEquals(untilRotation(1_000_000 + inMs, 1_000_000), want);
      assert(want <= 2 ** 31 - 1);
    });
  }
});
