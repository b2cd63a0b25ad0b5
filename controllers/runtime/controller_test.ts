import { assertStrictEquals } from "../../tests/helpers/assert.ts";
import { FakeClock } from "../../lib/clock.ts";
import { Controller, done } from "./controller.ts";
import { nullLogger } from "../../lib/log.ts";

Deno.test("Controller.run: shutdown grace, and halt without one", async (t) => {
  for (const how of ["halt", "grace"] as const) {
    await t.step(
      how === "halt" ? "halt aborts in-flight reconciles at once" : "stop waits",
      async () => {
        const clock = new FakeClock();
        let aborted: unknown;
        const started = Promise.withResolvers<void>();
        const ctrl = new Controller({
          name: "t",
          clock,
          logger: nullLogger,
          reconcile: async (_key, ctx) => {
            started.resolve();
            await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
            aborted = ctx.signal.reason;
            return done;
          },
        });
        const stop = new AbortController(), halt = new AbortController();
        const running = ctrl.run(stop.signal, { graceMs: 30_000, halt: halt.signal });
        ctrl.enqueue("k");
        await started.promise;
        stop.abort();
        if (how === "halt") halt.abort(new Error("lease lost"));
        else clock.advance(30_000);
        await running;
        assertStrictEquals(
          (aborted as Error).message,
          how === "halt" ? "lease lost" : "Shutdown grace period ended",
        );
      },
    );
  }
});
