import { assertEquals, assertRejects, assertThrows } from "../tests/helpers/assert.ts";
import { FakeClock } from "../lib/clock.ts";
import { BackupLimiter, type Lease } from "./limiter.ts";

/** Records which jobs got a slot, in order, without awaiting each other. */
function harness(limiter: BackupLimiter) {
  const granted: string[] = [];
  const leases = new Map<string, Lease>();
  const promises: Promise<void>[] = [];
  const submit = (cluster: string, id: string, signal?: AbortSignal) => {
    const p = limiter.acquire(cluster, signal ? { id, signal } : { id }).then((l) => {
      granted.push(id);
      leases.set(id, l);
    });
    promises.push(p.catch(() => {}));
    return p;
  };
  const release = async (id: string) => {
    leases.get(id)!.release();
    await flush();
  };
  return { granted, submit, release, settle: () => Promise.all(promises) };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

Deno.test("defaults are 2 global and 3 per cluster", () => {
  const l = new BackupLimiter();
  assertEquals([l.global, l.perCluster], [2, 3]);
  assertThrows(() => new BackupLimiter({ global: 0 }), RangeError);
});

Deno.test("global limit, FIFO order, queue positions", async () => {
  const clock = new FakeClock();
  const l = new BackupLimiter({ global: 2, perCluster: 5, clock });
  const h = harness(l);
  for (const id of ["a", "b", "c", "d"]) {
    void h.submit("x", id);
    clock.advance(1000);
  }
  await flush();
  assertEquals(h.granted, ["a", "b"]);
  assertEquals(l.position("c"), { state: "waiting", position: 1, since: clock.now() - 2000 });
  assertEquals(l.position("d"), { state: "waiting", position: 2, since: clock.now() - 1000 });
  assertEquals(l.stats(), { running: 2, waiting: 2 });
  await h.release("b");
  assertEquals(h.granted, ["a", "b", "c"]);
  assertEquals(l.position("c"), { state: "running", since: clock.now() });
  assertEquals(l.position("d"), { state: "waiting", position: 1, since: clock.now() - 1000 });
  await h.release("a");
  await h.release("c");
  await h.release("d");
  assertEquals(h.granted, ["a", "b", "c", "d"]);
  assertEquals(l.position("a"), undefined);
  assertEquals(l.stats(), { running: 0, waiting: 0 });
});

Deno.test("per-cluster limit does not block other clusters (no head-of-line blocking)", async () => {
  const l = new BackupLimiter({ global: 3, perCluster: 1 });
  const h = harness(l);
  void h.submit("x", "x1");
  void h.submit("x", "x2");
  void h.submit("y", "y1");
  void h.submit("x", "x3");
  void h.submit("z", "z1");
  await flush();
  assertEquals(h.granted, ["x1", "y1", "z1"]);
  // x2 keeps its place ahead of x3.
  assertEquals(l.position("x2"), { state: "waiting", position: 1, since: l.position("x2")!.since });
  await h.release("y1");
  assertEquals(h.granted, ["x1", "y1", "z1"], "freed global slot cannot go to cluster x");
  await h.release("x1");
  assertEquals(h.granted, ["x1", "y1", "z1", "x2"]);
  await h.release("x2");
  assertEquals(h.granted, ["x1", "y1", "z1", "x2", "x3"]);
});

Deno.test("aborting a waiter removes it from the queue", async () => {
  const l = new BackupLimiter({ global: 1 });
  const h = harness(l);
  void h.submit("x", "a");
  const ctl = new AbortController();
  const b = h.submit("x", "b", ctl.signal);
  void h.submit("x", "c");
  await flush();
  assertEquals(l.position("c"), { state: "waiting", position: 2, since: l.position("c")!.since });
  ctl.abort(new Error("shutdown"));
  await assertRejects(() => b, Error, "shutdown");
  assertEquals(l.position("b"), undefined);
  assertEquals(l.position("c")?.state, "waiting");
  await h.release("a");
  assertEquals(h.granted, ["a", "c"]);
  await assertRejects(() => l.acquire("x", { id: "c" }), Error, "already queued");
  const dead = AbortSignal.abort(new Error("gone"));
  await assertRejects(() => l.acquire("x", { id: "e", signal: dead }), Error, "gone");
});

Deno.test("release is idempotent and works with using", async () => {
  const l = new BackupLimiter({ global: 1 });
  {
    using _lease = await l.acquire("x", { id: "a" });
    assertEquals(l.stats().running, 1);
  }
  assertEquals(l.stats().running, 0);
  const lease = await l.acquire("x", { id: "b" });
  lease.release();
  lease.release();
  assertEquals(l.stats().running, 0);
  const again = await l.acquire("x", { id: "c" });
  again.release();
});
