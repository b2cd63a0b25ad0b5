import { assertEquals, assertStrictEquals, assertThrows } from "../tests/helpers/assert.ts";
import { join } from "node:path";
import {
  assertStorageError,
  bytesStream,
  runConformance,
} from "../tests/helpers/storage_conformance.ts";
import { LocalStore } from "./local.ts";

Deno.test("local store passes the conformance suite", async (t) => {
  await using dir = await tempDir();
  await runConformance(
    t,
    ({ missingBucket }) =>
      new LocalStore({ path: missingBucket ? join(dir.path, "nope") : dir.path }),
    {
      // No temporary file may survive a failed put, nor a sidecar without its object.
      assertNoLeftovers: async (store) => {
        const files = await walk(dir.path);
        assertEquals(files.filter((f) => f.includes(".dbtether-tmp-")), []);
        const sidecars = files.filter((f) => f.includes(".dbtether-meta-"));
        const objects = (await store.list("")).length;
        assertStrictEquals(
          sidecars.length,
          objects,
          `sidecars: ${sidecars.length}, objects: ${objects}`,
        );
      },
    },
  );
});

Deno.test("local store", async (t) => {
  await using dir = await tempDir();
  const store = new LocalStore({ path: dir.path });

  await t.step("writes objects as plain files under the root", async () => {
    await store.put("c/db/1.sql.gz", bytesStream(10), { metadata: { sha256: "x" } });
    assertStrictEquals((await Deno.stat(join(dir.path, "c/db/1.sql.gz"))).size, 10);
    assertEquals((await store.list("c/")).map((o) => o.key), ["c/db/1.sql.gz"]);
  });

  await t.step("rejects reserved names and keys escaping the root", async () => {
    await assertStorageError(
      store.put("a/.dbtether-tmp-x", bytesStream(1)),
      "InvalidConfiguration",
    );
    await assertStorageError(store.get("../../etc/passwd"), "InvalidConfiguration");
  });

  await t.step("a directory is not an object", async () => {
    await assertStorageError(store.get("c/db"), "NotFound");
    assertStrictEquals(await store.head("c/db"), undefined);
  });

  await t.step("abortIncompleteUploads removes a crashed put's temporary file", async () => {
    const ac = new AbortController();
    let stalled!: () => void;
    const reachedStall = new Promise<void>((r) => (stalled = r));
    const reader = bytesStream(100_000).getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const r = await reader.read();
        if (!r.done) return controller.enqueue(r.value);
        stalled();
        await new Promise(() => {});
      },
    });
    // The stalled put stands for a writer that crashed: its temp file stays.
    const put = store.put("crashed/dump", body, { signal: ac.signal }).catch(() => {});
    await reachedStall;
    const temps = async () =>
      (await Array.fromAsync(Deno.readDir(join(dir.path, "crashed")))).filter((e) =>
        e.name.startsWith(".dbtether-tmp-")
      );
    assertStrictEquals((await temps()).length, 1);
    assertStrictEquals(await store.abortIncompleteUploads("crashed/other"), 0);
    assertStrictEquals(await store.abortIncompleteUploads("crashed/dump"), 1);
    assertStrictEquals((await temps()).length, 0);
    ac.abort();
    await put;
  });

  await t.step("requires an absolute path", () => {
    assertThrows(() => new LocalStore({ path: "relative" }));
  });
});

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "dbtether-local-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await walk(p));
    else out.push(p);
  }
  return out;
}
