import { assertEquals, assertThrows } from "../tests/helpers/assert.ts";
import { parseGoDuration } from "./duration.ts";

Deno.test("Go durations: parsed into milliseconds, or refused naming the field", async (t) => {
  await t.step("5m, 1h30m, 500ms, 1.5s, 90s, 1.5h and 0 parse into milliseconds", () => {
    const cases: [string, number][] = [
      ["5m", 300_000],
      ["1h30m", 5_400_000],
      ["500ms", 500],
      ["1.5s", 1500],
      ["90s", 90_000],
      ["1.5h", 5_400_000],
      ["0", 0],
    ];
    for (const [s, ms] of cases) assertEquals(parseGoDuration(s), ms, s);
  });
  await t.step("what is not a Go duration is refused, naming the field", () => {
    for (const s of ["", "5", "5 m", "1d", "m5", "5m garbage"]) {
      assertThrows(() => parseGoDuration(s, "spec.x"), Error, "Invalid spec.x");
      assertThrows(() => parseGoDuration(s), Error, `Invalid duration "${s}"`);
    }
  });
});
