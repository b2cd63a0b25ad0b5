import { assertEquals } from "../tests/helpers/assert.ts";
import { jobEnd, kubeMicroTime, kubeTime } from "./time.ts";

Deno.test("kubeTime drops the milliseconds; kubeMicroTime pads them to microseconds", () => {
  const at = Date.UTC(2026, 11, 2, 6, 34, 35, 123);
  assertEquals(kubeTime(at), "2026-12-02T06:34:35Z");
  assertEquals(kubeTime(new Date(at)), "2026-12-02T06:34:35Z");
  assertEquals(kubeMicroTime(at), "2026-12-02T06:34:35.123000Z");
});

Deno.test("jobEnd: completedAt always, a duration only for a job that was running", () => {
  const now = Date.parse("2026-12-02T06:35:00Z");
  assertEquals(jobEnd({ startedAt: "2026-12-02T06:34:00Z", running: true, now }), {
    completedAt: "2026-12-02T06:35:00Z",
    duration: "1m",
  });
  assertEquals(jobEnd({ startedAt: "2026-12-02T06:34:00Z", running: false, now }), {
    completedAt: "2026-12-02T06:35:00Z",
  });
  assertEquals(jobEnd({ running: true, now }), { completedAt: "2026-12-02T06:35:00Z" });
});
