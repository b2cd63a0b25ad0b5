import { assertStrictEquals, assertThrows } from "../tests/helpers/assert.ts";
import { type Clock, FakeClock } from "./clock.ts";
import { LeadershipLostError, LeaseFence, OPEN_FENCE } from "./fence.ts";

/** A clock whose time can jump without firing timers: a process frozen by SIGSTOP. */
class FrozenClock implements Clock {
  wall = 1_000_000;
  mono = 5_000;
  now(): number {
    return this.wall;
  }
  sleep(): Promise<void> {
    return new Promise(() => {});
  }
  setTimer(): () => void {
    return () => {};
  }
}

Deno.test("LeaseFence", async (t) => {
  await t.step("the open fence of a process without leader election never closes", () => {
    OPEN_FENCE.check();
    assertStrictEquals(OPEN_FENCE.signal.aborted, false);
  });

  await t.step("standing by: closed to side effects, but not lost", () => {
    const clock = new FakeClock();
    const f = new LeaseFence({ clock, validForMs: 10_000, monotonic: () => clock.now() });
    assertThrows(() => f.check(), LeadershipLostError);
    assertStrictEquals(f.signal.aborted, false);
    assertStrictEquals(f.remainingMs(), 0);
  });

  await t.step("open for validForMs after the renewal was sent, then closed for good", () => {
    const clock = new FakeClock();
    const f = new LeaseFence({ clock, validForMs: 10_000, monotonic: () => clock.now() });
    const sent = f.stamp();
    clock.advance(3_000); // the renewal took 3 s to succeed
    f.renewed(sent);
    f.check();
    assertStrictEquals(f.remainingMs(), 7_000);
    clock.advance(6_999);
    f.check();
    assertStrictEquals(f.signal.aborted, false);
    clock.advance(1); // the timer fires at expiry: in-flight work is cancelled on time
    assertStrictEquals(f.signal.aborted, true);
    assertThrows(() => f.check(), Error, "not renewed within 10000 ms");
    f.renewed(f.stamp());
    assertThrows(() => f.check(), LeadershipLostError, undefined, "a closed fence never reopens");
  });

  await t.step("a frozen process whose timer has not fired is stopped by the clock", () => {
    const clock = new FrozenClock();
    const f = new LeaseFence({ clock, validForMs: 10_000, monotonic: () => clock.mono });
    f.renewed(f.stamp());
    f.check();
    clock.wall += 30_000;
    clock.mono += 30_000;
    assertStrictEquals(f.signal.aborted, false, "no timer ran");
    assertThrows(() => f.check(), LeadershipLostError);
    assertStrictEquals(f.signal.aborted, true, "the check closes it and cancels what is in flight");
  });

  const cases = [
    { name: "the wall clock is stepped back", wall: -60_000, mono: 11_000 },
    { name: "the monotonic clock stood still (suspend)", wall: 11_000, mono: 0 },
  ];
  for (const c of cases) {
    await t.step(`expires when ${c.name}`, () => {
      const clock = new FrozenClock();
      const f = new LeaseFence({ clock, validForMs: 10_000, monotonic: () => clock.mono });
      f.renewed(f.stamp());
      clock.wall += c.wall;
      clock.mono += c.mono;
      assertThrows(() => f.check(), LeadershipLostError);
    });
  }

  await t.step("an older renewal answered late does not move the deadline back", () => {
    const clock = new FakeClock();
    const f = new LeaseFence({ clock, validForMs: 10_000, monotonic: () => clock.now() });
    const early = f.stamp();
    clock.advance(2_000);
    f.renewed(f.stamp());
    f.renewed(early);
    assertStrictEquals(f.remainingMs(), 10_000);
  });

  await t.step("close stops at once, with the reason", () => {
    const clock = new FakeClock();
    const f = new LeaseFence({ clock, validForMs: 10_000, monotonic: () => clock.now() });
    f.renewed(f.stamp());
    f.close('replica "b" holds the leader lease');
    assertStrictEquals(f.signal.aborted, true);
    assertThrows(() => f.check(), Error, 'replica "b" holds the leader lease');
    assertStrictEquals(clock.pending(), 0, "its timer is cancelled");
  });
});
