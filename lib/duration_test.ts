import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { parseGoDuration } from "./duration.ts";

Deno.test("Go durations", async (t) => {
  await t.step("parse", () => {
    const cases: [string, number][] = [["5m", 300_000], ["1h30m", 5_400_000], ["500ms", 500], [
      "1.5s",
      1500,
    ], ["0", 0]];
    for (const [s, ms] of cases) assertEquals(parseGoDuration(s), ms, s);
  });
  await t.step("reject", () => {
    for (const s of ["", "5", "5 m", "1d", "m5", "5m garbage"]) {
      throws(() => parseGoDuration(s, "spec.x"), /Invalid spec.x/);
    }
  });
});
