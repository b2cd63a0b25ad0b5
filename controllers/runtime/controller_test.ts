import { assertStrictEquals } from "../../tests/helpers/assert.ts";
import { FakeClock } from "../../lib/clock.ts";
import { Controller, done, resyncOffset, specOrMetaChanged } from "./controller.ts";
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

Deno.test("Controller.resync: every cached object once per period, spread, failing keys left alone", async () => {
  const clock = new FakeClock();
  const period = 60_000;
  const seen: { key: string; at: number }[] = [];
  const ctrl = new Controller({
    name: "t",
    clock,
    logger: nullLogger,
    resyncPeriodMs: period,
    // The failing key's retry comes long after the test's two periods.
    baseBackoffMs: 10 * period,
    maxBackoffMs: 10 * period,
    reconcile: (key) => {
      seen.push({ key, at: clock.now() });
      if (key === "ns/bad") throw new Error("fails");
      return Promise.resolve(done);
    },
  });
  const objects = ["a", "b", "c", "bad"].map((name) => ({
    apiVersion: "v1",
    kind: "K",
    metadata: { name, namespace: "ns" },
    spec: {},
  }));
  ctrl.resync({ list: () => objects });
  const stop = new AbortController();
  const running = ctrl.run(stop.signal);
  const settle = () => new Promise((r) => setTimeout(r, 0));
  ctrl.enqueue("ns/bad");
  await settle();
  const start = clock.now();
  // Nothing before the first period ends; then each key once, at its own offset.
  clock.advance(period - 1);
  await settle();
  assertStrictEquals(seen.filter((s) => s.key !== "ns/bad").length, 0);
  for (let i = 0; i < period; i += 1000) {
    clock.advance(1000);
    await settle();
  }
  const firstRound = seen.filter((s) => s.key !== "ns/bad" && s.at >= start + period);
  assertStrictEquals(firstRound.map((s) => s.key).sort().join(","), "ns/a,ns/b,ns/c");
  for (const s of firstRound) {
    const offset = resyncOffset(s.key, period);
    // Fired by a 1 s step of the fake clock at or after its offset.
    assertStrictEquals(s.at - (start + period) >= offset - 1, true, `${s.key} early`);
    assertStrictEquals(s.at - (start + period) <= offset + 1000, true, `${s.key} late`);
  }
  // The failing key waits for its backoff: the resync did not bring it back sooner.
  assertStrictEquals(seen.filter((s) => s.key === "ns/bad").length, 1);
  stop.abort();
  clock.advance(30_000);
  await running;
});

Deno.test("resyncOffset: stable, inside the period, spread over it", () => {
  const period = 600_000;
  assertStrictEquals(resyncOffset("ns/x", period), resyncOffset("ns/x", period));
  const offsets = Array.from({ length: 1000 }, (_, i) => resyncOffset(`team-${i}/db-${i}`, period));
  assertStrictEquals(offsets.every((o) => o >= 0 && o < period), true);
  // Ten equal slices of the period each get between 5% and 15% of the keys.
  const slices = Array.from({ length: 10 }, () => 0);
  for (const o of offsets) slices[Math.floor(o / (period / 10))]! += 1;
  assertStrictEquals(slices.every((n) => n >= 50 && n <= 150), true, slices.join(","));
});

Deno.test("Controller.resync: period 0 never re-queues", async () => {
  const clock = new FakeClock();
  const seen: string[] = [];
  const ctrl = new Controller({
    name: "t",
    clock,
    logger: nullLogger,
    resyncPeriodMs: 0,
    reconcile: (key) => (seen.push(key), Promise.resolve(done)),
  });
  ctrl.resync({ list: () => [{ apiVersion: "v1", kind: "K", metadata: { name: "a" }, spec: {} }] });
  const stop = new AbortController();
  const running = ctrl.run(stop.signal);
  clock.advance(24 * 3_600_000);
  await new Promise((r) => setTimeout(r, 0));
  assertStrictEquals(clock.pending(), 0);
  assertStrictEquals(seen.length, 0);
  stop.abort();
  await running;
});
