import { assertEquals } from "../tests/helpers/assert.ts";
import { kubeMicroTime, kubeTime } from "./time.ts";

Deno.test("kubeTime drops the milliseconds; kubeMicroTime pads them to microseconds", () => {
  const at = Date.UTC(2026, 11, 2, 6, 34, 35, 123);
  assertEquals(kubeTime(at), "2026-12-02T06:34:35Z");
  assertEquals(kubeTime(new Date(at)), "2026-12-02T06:34:35Z");
  assertEquals(kubeMicroTime(at), "2026-12-02T06:34:35.123000Z");
});
