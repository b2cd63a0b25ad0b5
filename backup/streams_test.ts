import { assertEquals } from "../tests/helpers/assert.ts";
import { FakeClock } from "../lib/clock.ts";
import { onAbort, progressReporter } from "./streams.ts";

Deno.test("progressReporter: the meters' snapshot with the elapsed time, throttled", () => {
  const clock = new FakeClock();
  const seen: { bytes: number; elapsedMs: number }[] = [];
  let bytes = 0;
  const report = progressReporter(clock, {
    onProgress: (p) => seen.push(p),
    progressIntervalMs: 1000,
  }, () => ({ bytes }));
  bytes = 10;
  clock.advance(400);
  report(false); // too early: nothing
  clock.advance(700);
  report(false);
  bytes = 25;
  clock.advance(10);
  report(true); // the final report always comes
  assertEquals(seen, [{ bytes: 10, elapsedMs: 1100 }, { bytes: 25, elapsedMs: 1110 }]);
  progressReporter(clock, {}, () => ({ bytes }))(true); // without onProgress: nothing to call
});

Deno.test("onAbort: called once on abort, never after it stops listening", () => {
  let calls = 0;
  const a = new AbortController();
  onAbort(a.signal, () => calls++);
  a.abort();
  a.abort();
  const b = new AbortController();
  onAbort(b.signal, () => calls++)();
  b.abort();
  onAbort(undefined, () => calls++)(); // no signal: nothing to listen to
  assertEquals(calls, 1);
});
