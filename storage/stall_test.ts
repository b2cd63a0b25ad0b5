import { assert, assertEquals } from "../tests/helpers/assert.ts";
import { FakeClock } from "../lib/clock.ts";
import { StallTimer, StallWatch } from "./stall.ts";

Deno.test("StallWatch: the storage stalls only while it owes a step", async (t) => {
  await t.step("owing from 0 with a 5 s timeout stalls at 5 s, not before", () => {
    const w = new StallWatch(5000);
    assertEquals(w.deadline(), undefined);
    assert(!w.stalled(1_000_000), "owing nothing never stalls");
    w.owe(0);
    assertEquals(w.deadline(), 5000);
    assert(!w.stalled(4999));
    assert(w.stalled(5000));
  });
  await t.step("each step taken moves the deadline; waiting for the producer clears it", () => {
    const w = new StallWatch(5000);
    w.owe(0);
    w.owe(4000);
    assert(!w.stalled(8000));
    w.settle(); // the storage asked for bytes; pg_dump is slow
    assert(!w.stalled(60_000));
    w.owe(60_000);
    assert(w.stalled(65_000));
  });
});

Deno.test("StallTimer: fires once at the deadline, re-arms when it moved", async (t) => {
  await t.step("fires at the deadline", () => {
    const clock = new FakeClock(0);
    const w = new StallWatch(1000);
    w.owe(0);
    let fired = 0;
    new StallTimer(clock, w, () => fired++);
    clock.advance(999);
    assertEquals(fired, 0);
    clock.advance(1);
    assertEquals(fired, 1);
    clock.advance(10_000);
    assertEquals(fired, 1, "once");
  });
  await t.step("progress pushes it back; owing nothing disarms it until poked", () => {
    const clock = new FakeClock(0);
    const w = new StallWatch(1000);
    w.owe(0);
    let fired = 0;
    const timer = new StallTimer(clock, w, () => fired++);
    clock.advance(800);
    w.owe(clock.now());
    clock.advance(800); // the first timer fires at 1000, sees the deadline at 1800, re-arms
    assertEquals(fired, 0);
    w.settle();
    clock.advance(5000);
    assertEquals([fired, clock.pending()], [0, 0], "no timer while the storage owes nothing");
    w.owe(clock.now());
    timer.poke();
    clock.advance(1000);
    assertEquals(fired, 1);
  });
  await t.step("stop disarms it for good", () => {
    const clock = new FakeClock(0);
    const w = new StallWatch(1000);
    w.owe(0);
    let fired = 0;
    const timer = new StallTimer(clock, w, () => fired++);
    timer.stop();
    timer.poke();
    clock.advance(5000);
    assertEquals([fired, clock.pending()], [0, 0]);
  });
});
