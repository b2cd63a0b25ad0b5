import { assertStrictEquals } from "../../tests/helpers/assert.ts";
import { FakeClock } from "../../lib/clock.ts";
import { Controller, done, specOrMetaChanged } from "./controller.ts";
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

Deno.test("specOrMetaChanged: spec and metadata count; status and added finalizers do not", () => {
  const base = {
    apiVersion: "v1",
    kind: "K",
    spec: {},
    metadata: { name: "a", generation: 1, resourceVersion: "1", finalizers: ["x"] },
    status: { phase: "Ready" },
  };
  const next = (m: Record<string, unknown>, status = base.status) => ({
    ...base,
    metadata: { ...base.metadata, resourceVersion: "2", ...m },
    status,
  });
  assertStrictEquals(specOrMetaChanged(next({}, { phase: "Failed" }), base), false);
  assertStrictEquals(specOrMetaChanged(next({ finalizers: ["x", "ours"] }), base), false);
  assertStrictEquals(specOrMetaChanged(next({ finalizers: [] }), base), true);
  assertStrictEquals(specOrMetaChanged(next({ finalizers: ["y"] }), base), true);
  assertStrictEquals(specOrMetaChanged(next({ generation: 2 }), base), true);
  assertStrictEquals(specOrMetaChanged(next({ labels: { a: "b" } }), base), true);
  assertStrictEquals(specOrMetaChanged(next({}), undefined), true);
});
