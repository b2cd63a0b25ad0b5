import { assertEquals, assertRejects, assertThrows } from "../tests/helpers/assert.ts";
import { FakeClock } from "../lib/clock.ts";
import { BackupLimiter, type Lease } from "./limiter.ts";

/** Records which jobs got a slot, in order, without awaiting each other. */
function harness(limiter: BackupLimiter) {
  const granted: string[] = [];
  const leases = new Map<string, Lease>();
  const promises: Promise<void>[] = [];
  const submit = (cluster: string, id: string, signal?: AbortSignal, storage?: string) => {
    const p = limiter.acquire(cluster, { id, storage, ...(signal ? { signal } : {}) }).then((l) => {
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

Deno.test("defaults are 2 global, 3 per cluster and global - 1 (at least 1) per storage", () => {
  const l = new BackupLimiter();
  assertEquals([l.global, l.perCluster, l.perStorage], [2, 3, 1]);
  assertEquals(new BackupLimiter({ global: 1 }).perStorage, 1);
  assertEquals(new BackupLimiter({ global: 5 }).perStorage, 4);
  assertEquals(new BackupLimiter({ global: 5, perStorage: 5 }).perStorage, 5);
  assertThrows(() => new BackupLimiter({ global: 0 }), RangeError);
  assertThrows(() => new BackupLimiter({ perStorage: 0 }), RangeError);
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
  assertEquals(l.position("x2"), {
    state: "waiting",
    position: 1,
    since: l.position("x2")!.since,
    blockedBy: { limit: "cluster", name: "x", running: 1 },
  });
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

Deno.test("a storage at its limit leaves the other slots to other storages", async (t) => {
  await t.step("the default keeps one of two global slots for the other storages", async () => {
    const l = new BackupLimiter({ global: 2 });
    const h = harness(l);
    void h.submit("c", "stuck-1", undefined, "stuck");
    void h.submit("c", "stuck-2", undefined, "stuck");
    void h.submit("c", "stuck-3", undefined, "stuck");
    void h.submit("c", "ok-1", undefined, "store");
    void h.submit("c", "ok-2", undefined, "store");
    await flush();
    assertEquals(h.granted, ["stuck-1", "ok-1"]);
    assertEquals(l.position("stuck-2"), {
      state: "waiting",
      position: 1,
      since: l.position("stuck-2")!.since,
      blockedBy: { limit: "storage", name: "stuck", running: 1 },
    });
    assertEquals(l.position("ok-2"), {
      state: "waiting",
      position: 3,
      since: l.position("ok-2")!.since,
      blockedBy: { limit: "storage", name: "store", running: 1 },
    });
    await h.release("ok-1");
    assertEquals(h.granted, ["stuck-1", "ok-1", "ok-2"], "stuck-2 keeps waiting for its storage");
    await h.release("stuck-1");
    assertEquals(h.granted, ["stuck-1", "ok-1", "ok-2", "stuck-2"]);
    await h.release("ok-2");
    await h.release("stuck-2");
    assertEquals(h.granted.length, 5);
    await h.release("stuck-3");
    assertEquals(l.stats(), { running: 0, waiting: 0 });
  });
  await t.step("jobs without a storage count only against the other limits", async () => {
    const l = new BackupLimiter({ global: 3, perStorage: 1 });
    const h = harness(l);
    void h.submit("c", "a", undefined, "s");
    void h.submit("c", "b");
    void h.submit("c", "c");
    await flush();
    assertEquals(h.granted, ["a", "b", "c"]);
  });
  await t.step("an aborted waiter behind a full storage leaves no count behind", async () => {
    const l = new BackupLimiter({ global: 2, perStorage: 1 });
    const h = harness(l);
    void h.submit("c", "a", undefined, "s");
    const ctl = new AbortController();
    const b = h.submit("c", "b", ctl.signal, "s");
    await flush();
    ctl.abort(new Error("deleted"));
    await assertRejects(() => b, Error, "deleted");
    await h.release("a");
    void h.submit("c", "d", undefined, "s");
    await flush();
    assertEquals(h.granted, ["a", "d"]);
  });
});
