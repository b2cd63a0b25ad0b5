/**
 * The conformance suite every storage backend passes (the pattern of Hono's router tests):
 * each backend's test calls `runConformance(t, makeStore)` against a real server.
 */
import { assert, assertEquals, assertMatch, assertRejects, assertStrictEquals } from "./assert.ts";
import { type ObjectStore, StorageError } from "../../storage/store.ts";

/** Builds a store for one step; `missingBucket` asks for a store whose bucket does not exist. */
export type MakeStore = (opts: { missingBucket?: boolean }) => ObjectStore | Promise<ObjectStore>;

/** Options of {@link runConformance}. */
export interface ConformanceOptions {
  /**
   * Backend-specific check after a failed or aborted put, for what the interface cannot see
   * (S3: no incomplete multipart upload; local: no temporary file).
   */
  assertNoLeftovers?: (store: ObjectStore, key: string) => Promise<void>;
  /** Size of the large round-trip object; defaults to 12 MiB + 123 bytes (three S3 parts). */
  largeSize?: number;
  /**
   * Opens a store whose completing request can be intercepted (a proxy in front of the
   * server), for the steps that abort a put while the server completes it and that lose the
   * server's answer to it. Without it those steps are skipped: local and memory complete
   * in-process.
   */
  commitGate?: () => Promise<CommitGate>;
}

/** A store behind a proxy that can act on the request completing an object. */
export interface CommitGate extends AsyncDisposable {
  readonly store: ObjectStore;
  /**
   * Arms the next completing request (S3 PutObject or CompleteMultipartUpload, the last chunk
   * of a GCS resumable upload, Azure Put Block List): once the server has answered it, `fn`
   * runs before the answer is passed on; with `drop` the connection is closed instead, as if
   * the answer was lost. Resolves when that request was handled.
   */
  atNextCommit(fn: () => void, opts?: { drop?: boolean }): Promise<void>;
}

const MiB = 1024 * 1024;

/** Runs every conformance step against stores built by `makeStore`. */
export async function runConformance(
  t: Deno.TestContext,
  makeStore: MakeStore,
  opts: ConformanceOptions = {},
): Promise<void> {
  const run = `conformance-${crypto.randomUUID().slice(0, 8)}/`;
  const step = (name: string, fn: (store: ObjectStore) => Promise<void>) =>
    t.step(name, async () => {
      const store = await makeStore({});
      try {
        await fn(store);
      } finally {
        await store.close();
      }
    });
  const noLeftovers = async (store: ObjectStore, key: string) => {
    assertStrictEquals(await store.head(key), undefined, "an object was left at the key");
    assertEquals(await store.list(key), [], "an object was left under the key");
    await opts.assertNoLeftovers?.(store, key);
  };

  await step("probe succeeds on an existing bucket", (store) => store.probe());

  await t.step("probe fails with BucketNotFound on a missing bucket", async () => {
    const store = await makeStore({ missingBucket: true });
    try {
      await assertStorageError(store.probe(), "BucketNotFound");
      await assertStorageError(store.put(`${run}x`, bytesStream(10)), "BucketNotFound");
    } finally {
      await store.close();
    }
  });

  await step("put and get round-trip a multi-megabyte stream with metadata", async (store) => {
    const key = `${run}round/trip.sql.gz`;
    const size = opts.largeSize ?? 12 * MiB + 123;
    const expected = await sha256(bytesStream(size));
    const res = await store.put(key, bytesStream(size), {
      contentType: "application/gzip",
      // A '-' in a key: Azure needs it mapped (its keys are C# identifiers).
      metadata: { sha256: expected, "dbtether-format": "plain" },
    });
    assertStrictEquals(res.size, size);
    assertStrictEquals(await sha256(await store.get(key)), expected);
    const head = await store.head(key);
    assert(head, "head found nothing after put");
    assertStrictEquals(head.key, key);
    assertStrictEquals(head.size, size);
    assertStrictEquals(head.metadata["sha256"], expected);
    assertStrictEquals(head.metadata["dbtether-format"], "plain");
    assert(Math.abs(head.lastModified.getTime() - Date.now()) < 5 * 60_000);
  });

  await step("put of an empty stream stores an empty object", async (store) => {
    const key = `${run}empty`;
    assertStrictEquals((await store.put(key, bytesStream(0))).size, 0);
    assertStrictEquals((await store.head(key))?.size, 0);
    assertStrictEquals((await readAll(await store.get(key))).byteLength, 0);
  });

  await step("a put to an existing key fails AlreadyExists and keeps the object", async (store) => {
    const key = `${run}exists`;
    const first = await sha256(bytesStream(1000, 1));
    await store.put(key, bytesStream(1000, 1), { metadata: { sha256: first } });
    // One single-request put and one that takes several parts, chunks or blocks.
    for (const size of [10, 6 * MiB + 7]) {
      const e = await assertRejects(
        () => store.put(key, bytesStream(size, 2), { metadata: { sha256: "x" } }),
      );
      assert(e instanceof StorageError && e.reason === "AlreadyExists", String(e));
      assertMatch(e.message, /never overwritten.*\{\{ \.RunID \}\}/);
      assertStrictEquals(await sha256(await store.get(key)), first);
      assertStrictEquals((await store.head(key))?.size, 1000);
      assertStrictEquals((await store.head(key))?.metadata["sha256"], first);
      await opts.assertNoLeftovers?.(store, key);
    }
  });

  await step(
    "two puts racing for one key: one wins, the other fails AlreadyExists",
    async (store) => {
      const key = `${run}race`;
      // Both bodies end only when both were read to the end, so both complete at once.
      let arrived = 0;
      let release!: () => void;
      const bothRead = new Promise<void>((r) => (release = r));
      const body = (seed: number) =>
        endGated(bytesStream(2 * MiB + seed, seed), async () => {
          if (++arrived === 2) release();
          await bothRead;
        });
      const results = await Promise.allSettled([store.put(key, body(1)), store.put(key, body(2))]);
      const won = results.findIndex((r) => r.status === "fulfilled");
      assert(won >= 0, `no put won: ${results.map((r) => r.status === "rejected" && r.reason)}`);
      const lost = results[1 - won]!;
      assertStrictEquals(lost.status, "rejected", "both puts succeeded: one overwrote the other");
      assert(
        lost.status === "rejected" && lost.reason instanceof StorageError &&
          lost.reason.reason === "AlreadyExists",
        `the losing put failed with ${lost.status === "rejected" && lost.reason}`,
      );
      assertStrictEquals(
        await sha256(await store.get(key)),
        await sha256(bytesStream(2 * MiB + won + 1, won + 1)),
      );
      await opts.assertNoLeftovers?.(store, key);
    },
  );

  await step(
    "list returns keys under a prefix, sorted, and keeps sibling prefixes apart",
    async (store) => {
      const base = `${run}list/`;
      const keys = ["a/b/2", "a/b/1", "a/bc/1", "a/b/deep/x", "z"].map((k) => base + k);
      for (const [i, key] of keys.entries()) await store.put(key, bytesStream(i + 1));
      const listed = async (p: string) => (await store.list(base + p)).map((o) => o.key);
      const full = (ks: string[]) => ks.map((k) => base + k);
      assertEquals(await listed("a/b/"), full(["a/b/1", "a/b/2", "a/b/deep/x"]));
      assertEquals(await listed("a/bc/"), full(["a/bc/1"]));
      assertEquals(await listed("a/b"), full(["a/b/1", "a/b/2", "a/b/deep/x", "a/bc/1"]));
      assertEquals(await listed(""), full(["a/b/1", "a/b/2", "a/b/deep/x", "a/bc/1", "z"]));
      assertEquals(await listed("a/b/1"), full(["a/b/1"]));
      assertEquals(await listed("nothing/"), []);
      const one = (await store.list(base + "a/bc/"))[0];
      assertStrictEquals(one?.size, 3);
      assert(one.lastModified instanceof Date);
    },
  );

  await step("list pages through more than one page of results", async (store) => {
    const base = `${run}many/`;
    const keys = Array.from({ length: 1005 }, (_, i) => `${base}${String(i).padStart(4, "0")}`);
    await pool(keys, 16, (key) => store.put(key, bytesStream(1)));
    assertEquals((await store.list(base)).map((o) => o.key), keys);
  });

  await step("delete removes an object and is idempotent", async (store) => {
    const key = `${run}delete/me`;
    await store.put(key, bytesStream(5));
    await store.delete(key);
    assertStrictEquals(await store.head(key), undefined);
    await store.delete(key);
    await store.delete(`${run}delete/never-existed`);
  });

  await step("get and head of a missing object", async (store) => {
    await assertStorageError(store.get(`${run}missing`), "NotFound");
    assertStrictEquals(await store.head(`${run}missing`), undefined);
  });

  await step("a put whose source errors midway leaves nothing at the key", async (store) => {
    const key = `${run}broken/source`;
    const boom = new Error("pg_dump exited with status 1");
    const e = await assertRejects(() => store.put(key, failingStream(6 * MiB + 7, boom)));
    assertStrictEquals(e, boom, "put must report the source's own error");
    await noLeftovers(store, key);
  });

  await step("a put aborted by its signal leaves nothing at the key", async (store) => {
    const key = `${run}aborted/put`;
    const ac = new AbortController();
    const body = stallingStream(6 * MiB + 7, () => ac.abort(new Error("shutdown")));
    await assertStorageError(store.put(key, body, { signal: ac.signal }), "Aborted");
    await noLeftovers(store, key);
    await assertStorageError(
      store.put(key, bytesStream(10), { signal: AbortSignal.abort() }),
      "Aborted",
    );
    await noLeftovers(store, key);
  });

  await step(
    "every call with a fired signal rejects at once with Aborted and changes nothing",
    async (store) => {
      const base = `${run}signal/`;
      const key = `${base}kept`;
      await store.put(key, bytesStream(10, 5), { metadata: { sha256: "z" } });
      const state = async () => ({ list: await store.list(base), head: await store.head(key) });
      const before = await state();
      const why = new Error("shutdown");
      const signal = AbortSignal.abort(why);
      const calls: [string, () => Promise<unknown>][] = [
        ["get", () => store.get(key, { signal })],
        ["head", () => store.head(key, { signal })],
        ["list", () => store.list(base, { signal })],
        ["delete", () => store.delete(key, { signal })],
        ["probe", () => store.probe({ signal })],
        ["put", () => store.put(`${base}new`, bytesStream(10), { signal })],
      ];
      const cleanup = store.abortIncompleteUploads?.bind(store);
      if (cleanup) calls.push(["abortIncompleteUploads", () => cleanup(key, { signal })]);
      for (const [name, call] of calls) {
        const started = performance.now();
        const e = await assertRejects(call, StorageError);
        const ms = Math.round(performance.now() - started);
        assertStrictEquals(e.reason, "Aborted", `${name}: ${e.reason}: ${e.message}`);
        assertStrictEquals(e.cause, why, `${name}: the abort error's cause is not the signal's`);
        assert(ms < 1000, `${name} took ${ms} ms to reject`);
      }
      assertEquals(await state(), before);
      assertEquals(await store.list(".dbtether-probe/"), [], "an aborted probe left its object");
    },
  );

  await step("a failed put keeps the previous object intact", async (store) => {
    const key = `${run}keep/previous`;
    await store.put(key, bytesStream(100, 3));
    await assertRejects(() => store.put(key, failingStream(MiB, new Error("boom"))));
    assertStrictEquals(await sha256(await store.get(key)), await sha256(bytesStream(100, 3)));
  });

  if (opts.commitGate) {
    const gated = (name: string, fn: (gate: CommitGate, store: ObjectStore) => Promise<void>) =>
      step(name, async (store) => {
        await using gate = await opts.commitGate!();
        await fn(gate, store);
      });

    await gated(
      "a put aborted while the server completes it leaves nothing",
      async (gate, store) => {
        for (const size of [10, 6 * MiB + 7]) {
          const key = `${run}abort-at-commit/${size}`;
          const ac = new AbortController();
          const committed = gate.atNextCommit(() => ac.abort(new Error("shutdown")));
          await assertStorageError(
            gate.store.put(key, bytesStream(size), { signal: ac.signal }),
            "Aborted",
          );
          await committed;
          await noLeftovers(store, key);
        }
      },
    );

    await gated("a put whose completion answer is lost succeeds, once", async (gate, store) => {
      for (const size of [10, 6 * MiB + 7]) {
        const key = `${run}lost-answer/${size}`;
        const committed = gate.atNextCommit(() => {}, { drop: true });
        const res = await gate.store.put(key, bytesStream(size, 4), { metadata: { sha256: "y" } });
        await committed;
        assertStrictEquals(res.size, size);
        assertStrictEquals(await sha256(await store.get(key)), await sha256(bytesStream(size, 4)));
        assertEquals((await store.list(key)).map((o) => o.key), [key]);
        assertEquals((await store.head(key))?.metadata, { sha256: "y" });
        await opts.assertNoLeftovers?.(store, key);
      }
    });
  }

  await step("abortIncompleteUploads finds nothing after clean puts", async (store) => {
    if (!store.abortIncompleteUploads) return;
    const key = `${run}incomplete/none`;
    assertStrictEquals(await store.abortIncompleteUploads(key), 0);
    await store.put(key, bytesStream(10));
    assertStrictEquals(await store.abortIncompleteUploads(key), 0);
    assertStrictEquals((await store.head(key))?.size, 10);
  });

  await step("invalid keys are rejected", async (store) => {
    for (const key of ["", "/abs", "../escape", "a/../../b", "a//b", "a/./b"]) {
      await assertStorageError(store.put(key, bytesStream(1)), "InvalidConfiguration");
      await assertStorageError(store.get(key), "InvalidConfiguration");
      await assertStorageError(store.delete(key), "InvalidConfiguration");
    }
    await assertStorageError(store.list("../"), "InvalidConfiguration");
  });

  await step("cleanup", async (store) => {
    await pool((await store.list(run)).map((o) => o.key), 16, (key) => store.delete(key));
    assertEquals(await store.list(run), []);
  });
}

/** Asserts that `p` rejects with a StorageError of the given reason. */
export async function assertStorageError(p: Promise<unknown>, reason: string): Promise<void> {
  const e = await assertRejects(() => p);
  assert(e instanceof StorageError, `expected StorageError(${reason}), got ${e}`);
  assertStrictEquals(e.reason, reason, `expected ${reason}, got ${e.reason}: ${e.message}`);
}

/** Deterministic pseudo-random bytes in irregular chunk sizes (seeded xorshift). */
export function bytesStream(size: number, seed = 7): ReadableStream<Uint8Array> {
  let left = size;
  let x = seed * 2654435761 >>> 0 || 1;
  let n = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (left <= 0) return controller.close();
      const len = Math.min(left, 40_000 + (n++ % 7) * 13_001);
      const chunk = new Uint8Array(len);
      for (let i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        chunk[i] = x & 0xff;
      }
      left -= len;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
}

function failingStream(goodBytes: number, error: Error): ReadableStream<Uint8Array> {
  const reader = bytesStream(goodBytes).getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const r = await reader.read();
      if (r.done) controller.error(error);
      else controller.enqueue(r.value);
    },
  }, { highWaterMark: 0 });
}

/** Yields `goodBytes`, then calls `onStall` and never ends (like a pg_dump that hangs). */
function stallingStream(goodBytes: number, onStall: () => void): ReadableStream<Uint8Array> {
  const reader = bytesStream(goodBytes).getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const r = await reader.read();
      if (!r.done) return controller.enqueue(r.value);
      // Give the backend a moment to send what it buffered, then abort.
      setTimeout(onStall, 200);
      await new Promise(() => {});
    },
  }, { highWaterMark: 0 });
}

/** `source`, whose end is passed on only after `atEnd` resolved. */
function endGated(
  source: ReadableStream<Uint8Array>,
  atEnd: () => Promise<void>,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const r = await reader.read();
      if (!r.done) return controller.enqueue(r.value);
      await atEnd();
      controller.close();
    },
  }, { highWaterMark: 0 });
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function sha256(stream: ReadableStream<Uint8Array>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await readAll(stream));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function pool<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(size, items.length) }, worker));
}
