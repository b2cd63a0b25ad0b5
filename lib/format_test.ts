import { assertEquals } from "../tests/helpers/assert.ts";
import { humanDuration, humanSize } from "./format.ts";

Deno.test("humanSize and humanDuration print the units the status columns show", () => {
  assertEquals(humanSize(512), "512 B");
  assertEquals(humanSize(12.3 * 1024 * 1024), "12.3 MiB");
  assertEquals(humanDuration(950), "950ms");
  assertEquals(humanDuration(12_000), "12s");
  assertEquals(humanDuration(184_000), "3m4s");
  assertEquals(humanDuration(7_500_000), "2h5m");
});
