import { assert, assertEquals, assertRejects } from "../tests/helpers/assert.ts";
import { runConformance } from "../tests/helpers/storage_conformance.ts";
import { FakeClock } from "../lib/clock.ts";
import { MemoryStore } from "./memory.ts";
import { guardStalls, stallOf } from "./stall_guard.ts";
import { type ObjectStore, type PutOptions, StorageError } from "./store.ts";

const flush = () => new Promise((r) => setTimeout(r, 0));

Deno.test("a guarded store passes the conformance suite", async (t) => {
  const bucket = new MemoryStore({ chunkSize: 1000 });
  const guard = (s: ObjectStore) => guardStalls(s, { timeoutMs: 30_000, subject: "test" });
  await runConformance(
    t,
    ({ missingBucket }) => guard(missingBucket ? new MemoryStore({ missing: true }) : bucket),
  );
});

/** A body whose chunks come only when `next()` is called: a slow pg_dump. */
function slowBody() {
  let release: (() => void) | undefined;
  let n = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      await new Promise<void>((r) => (release = r));
      if (n++ === 3) c.close();
      else c.enqueue(new Uint8Array(10));
    },
  }, { highWaterMark: 0 });
  return { stream, next: () => release?.() };
}

Deno.test("a slow producer is not the storage's stall", async () => {
  const clock = new FakeClock(0);
  const store = guardStalls(new MemoryStore(), { timeoutMs: 1000, subject: "test", clock });
  const body = slowBody();
  const put = store.put("k", body.stream);
  for (let i = 0; i < 4; i++) {
    await flush();
    clock.advance(10_000); // the storage waits for bytes: it owes nothing
    body.next();
  }
  assertEquals(await put, { size: 30 });
});

/**
 * A backend that accepts the call and never reads or answers, as the real S3 client does
 * behind the hanging proxy of tests/verify/fairness_test.ts (which runs the guard against
 * MinIO); here only to drive the guard's logic with fake time.
 */
class Unanswering extends MemoryStore {
  calls: string[] = [];
  override put(_key: string, _body: ReadableStream<Uint8Array>, opts: PutOptions = {}) {
    this.calls.push("put");
    return new Promise<{ size: number }>((_, reject) => {
      opts.signal?.addEventListener("abort", () => reject(opts.signal!.reason));
    });
  }
  override head() {
    this.calls.push("head");
    return new Promise<undefined>(() => {});
  }
}

Deno.test("a storage that stops answering fails the call as Stalled, naming it", async (t) => {
  const clock = new FakeClock(0);
  const stalls: string[] = [];
  const inner = new Unanswering();
  const store = guardStalls(inner, {
    timeoutMs: 5000,
    subject: 'BackupStorage "stuck"',
    hint: "--backup-stall-timeout",
    clock,
    onStall: (what) => stalls.push(what),
  });
  await t.step("an upload it does not read", async () => {
    let cancelled: unknown;
    const body = new ReadableStream<Uint8Array>({ cancel: (r) => void (cancelled = r) });
    const put = store.put("k", body);
    put.catch(() => {});
    clock.advance(4999);
    await flush();
    clock.advance(1);
    const e = await assertRejects(() => put, StorageError);
    assertEquals(e.reason, "Stalled");
    assertEquals(
      e.message,
      'BackupStorage "stuck" stalled: it took no bytes of the upload and did not complete it ' +
        "for 5s (--backup-stall-timeout)",
    );
    assert(stallOf(new Error("wrapped", { cause: e })) === e);
    await flush();
    assert(stallOf(cancelled) === e, "the producer was cancelled with the stall");
  });
  await t.step("a request it does not answer", async () => {
    const head = store.head("k");
    head.catch(() => {});
    clock.advance(5000);
    const e = await assertRejects(() => head, StorageError);
    assert(/did not answer a head request for 5s/.test(e.message), e.message);
  });
  await t.step("the caller's own abort stays an abort", async () => {
    const ctl = new AbortController();
    const put = store.put("k", new ReadableStream(), { signal: ctl.signal });
    put.catch(() => {});
    ctl.abort(new Error("deleted"));
    const e = await assertRejects(() => put);
    assert(!stallOf(e), "not a stall");
  });
  assertEquals(stalls, ["upload", "head"]);
  // close waits for the calls given up on, at most one more timeout (the head never answers).
  const closing = store.close();
  await flush();
  clock.advance(5000);
  await closing;
});
