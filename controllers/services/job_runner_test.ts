import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { FakeClock } from "../../lib/clock.ts";
import { nullLogger } from "../../lib/log.ts";
import { JobRunner, JobStopped } from "./job_runner.ts";

/** A job that ends when told to, or when aborted (recording why). */
function job() {
  let finish!: () => void;
  const state = { aborted: undefined as unknown, finished: false };
  const done = new Promise<void>((r) => finish = r);
  const fn = async (signal: AbortSignal) => {
    await Promise.race([
      done,
      new Promise<void>((r) =>
        signal.addEventListener("abort", () => {
          state.aborted = signal.reason;
          r();
        }, { once: true })
      ),
    ]);
    state.finished = true;
  };
  return { fn, finish: () => finish(), state };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("JobRunner shutdown grace", async (t) => {
  await t.step("no grace: running jobs are aborted at once with a shutdown reason", async () => {
    const runner = new JobRunner(nullLogger);
    const j = job();
    assert(runner.start("a", j.fn));
    await runner.stop();
    assert(j.state.aborted instanceof JobStopped);
    assertEquals((j.state.aborted as JobStopped).why, "shutdown");
  });

  await t.step("a job that ends within the grace is not aborted", async () => {
    const clock = new FakeClock();
    const runner = new JobRunner(nullLogger, { shutdownGraceMs: 10_000, clock });
    const j = job();
    runner.start("a", j.fn);
    const stopped = runner.stop();
    await tick();
    assertEquals(runner.start("b", job().fn), false, "no new job while stopping");
    clock.advance(5_000);
    j.finish();
    await stopped;
    assertEquals([j.state.finished, j.state.aborted], [true, undefined]);
  });

  await t.step("a job still running when the grace ends is aborted", async () => {
    const clock = new FakeClock();
    const runner = new JobRunner(nullLogger, { shutdownGraceMs: 10_000, clock });
    const j = job();
    runner.start("a", j.fn);
    const stopped = runner.stop();
    await tick();
    clock.advance(9_999);
    await tick();
    assertEquals(j.state.aborted, undefined);
    clock.advance(1);
    await stopped;
    assert(j.state.aborted instanceof JobStopped);
  });

  await t.step("the lease lost: jobs are aborted at once, grace or not", async () => {
    for (const during of [false, true]) {
      const clock = new FakeClock();
      const runner = new JobRunner(nullLogger, { shutdownGraceMs: 60_000, clock });
      const j = job();
      runner.start("a", j.fn);
      const stop = new AbortController(), halt = new AbortController();
      const running = runner.runnable()(stop.signal, { halt: halt.signal });
      if (during) {
        stop.abort(); // a graceful shutdown began, then the lease was lost during its grace
        await tick();
        assertEquals(j.state.aborted, undefined);
      }
      halt.abort();
      stop.abort();
      await running;
      assert(j.state.aborted instanceof JobStopped, `aborted (lost during the grace: ${during})`);
      assertEquals(clock.now(), new FakeClock().now(), "without waiting for the grace");
    }
  });
});
