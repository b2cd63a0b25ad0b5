import { assertEquals } from "../../tests/helpers/assert.ts";
import { FakeClock } from "../../lib/clock.ts";
import { WorkQueue } from "./queue.ts";

Deno.test("work queue: one worker per key, capped backoff, delayed adds, shutdown", async (t) => {
  await t.step("deduplicates keys waiting in the queue", async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    q.add("a");
    q.add("a");
    q.add("b");
    assertEquals(q.length, 2);
    assertEquals(await q.get(), "a");
    assertEquals(await q.get(), "b");
  });

  await t.step("a key added while processing is handed out again only after done", async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    q.add("a");
    const k = await q.get();
    q.add("a");
    assertEquals(q.length, 0, "not queued while a worker holds it");
    q.done(k!);
    assertEquals(q.length, 1);
  });

  await t.step("backoff doubles per failure and stops at the cap", () => {
    const q = new WorkQueue({ clock: new FakeClock(), baseDelayMs: 100, maxDelayMs: 1000 });
    const delays = Array.from({ length: 6 }, () => q.addRateLimited("k"));
    assertEquals(delays, [100, 200, 400, 800, 1000, 1000]);
    q.forget("k");
    assertEquals(q.addRateLimited("k"), 100, "forget resets the count");
  });

  await t.step("delayed adds fire on the injected clock; the earliest deadline wins", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter("k", 5000);
    q.addAfter("k", 1000);
    q.addAfter("k", 9000);
    clock.advance(999);
    assertEquals(q.length, 0);
    clock.advance(1);
    assertEquals(q.length, 1);
    assertEquals(await q.get(), "k");
    clock.advance(10_000);
    assertEquals(q.length, 0, "the later deadlines were dropped");
  });

  await t.step("shutdown releases waiting workers", async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    const waiting = q.get();
    q.shutDown();
    assertEquals(await waiting, undefined);
  });
});

Deno.test("systemClock timers longer than setTimeout's 24.8-day limit do not fire at once", async () => {
  const { systemClock } = await import("../../lib/clock.ts");
  let fired = false;
  const cancel = systemClock.setTimer(30 * 86_400_000, () => (fired = true));
  await new Promise((r) => setTimeout(r, 50));
  cancel();
  assertEquals(fired, false);
});
