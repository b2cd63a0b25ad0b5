import { gzipSync, zstdCompressSync } from "node:zlib";
import { defaultLevel, detectAlgorithm, levelProblem } from "./compression.ts";
import { detectingDecompress } from "./decompress.ts";
import { chunked, collect } from "../tests/helpers/streams.ts";
import { assert, assertEquals, assertRejects } from "../tests/helpers/assert.ts";

const text = new TextEncoder().encode("CREATE TABLE t (id int);\n".repeat(100));

Deno.test("detectAlgorithm reads the magic bytes, not names", () => {
  assertEquals(detectAlgorithm(gzipSync(text)), "gzip");
  assertEquals(detectAlgorithm(zstdCompressSync(text)), "zstd");
  assertEquals(detectAlgorithm(new Uint8Array([0x1f, 0x8b])), "gzip");
  assertEquals(detectAlgorithm(new Uint8Array([0x28, 0xb5, 0x2f])), undefined);
  assertEquals(detectAlgorithm(text), undefined);
  assertEquals(detectAlgorithm(new Uint8Array()), undefined);
});

Deno.test("levels per algorithm", () => {
  assertEquals(defaultLevel(), 6);
  assertEquals(defaultLevel("zstd"), 3);
  for (const ok of [0, 6, 9]) assertEquals(levelProblem("gzip", ok), undefined);
  for (const ok of [1, 3, 19]) assertEquals(levelProblem("zstd", ok), undefined);
  assertEquals(levelProblem("gzip", 10), "invalid gzip level 10 (use 0 to 9)");
  assertEquals(levelProblem("zstd", 0), "invalid zstd level 0 (use 1 to 19)");
  assertEquals(levelProblem("zstd", 2.5), "invalid zstd level 2.5 (use 1 to 19)");
  assert(levelProblem("lz4", 1)?.includes('unknown compression algorithm "lz4"'));
});

Deno.test("detectingDecompress picks the codec from the first bytes", async (t) => {
  const cases = {
    gzip: gzipSync(text),
    zstd: zstdCompressSync(text),
    "two gzip members": new Uint8Array([...gzipSync(text), ...gzipSync(text)]),
    "two zstd frames": new Uint8Array([...zstdCompressSync(text), ...zstdCompressSync(text)]),
  };
  for (const [name, z] of Object.entries(cases)) {
    await t.step(name, async () => {
      const times = name.startsWith("two") ? 2 : 1;
      let seen = "";
      for (const size of [1, 3, 1 << 16]) {
        const out = await collect(
          detectingDecompress(chunked(z, size), { onDetect: (a) => seen = a }),
        );
        assertEquals(out.length, text.length * times);
        assertEquals(out.subarray(0, text.length), text);
      }
      assertEquals(seen, name.includes("zstd") ? "zstd" : "gzip");
    });
  }
});

Deno.test("detectingDecompress refuses what the manifest does not say, or no codec", async (t) => {
  await t.step("zstd bytes where the manifest says gzip", async () => {
    const s = detectingDecompress(chunked(zstdCompressSync(text), 100), { expected: "gzip" });
    await assertRejects(
      () => collect(s),
      Error,
      "its manifest says gzip, but the object is a zstd stream",
    );
  });
  await t.step("plain SQL", async () => {
    await assertRejects(
      () => collect(detectingDecompress(chunked(text, 100))),
      Error,
      "neither a gzip nor a zstd stream (it starts with 43 52 45 41)",
    );
  });
  await t.step("an empty object", async () => {
    await assertRejects(
      () => collect(detectingDecompress(chunked(new Uint8Array(), 1))),
      Error,
      "it starts with nothing",
    );
  });
  await t.step("a truncated zstd stream", async () => {
    const z = zstdCompressSync(text);
    const s = detectingDecompress(chunked(z.subarray(0, z.length - 3), 100));
    await assertRejects(() => collect(s));
  });
  await t.step("the source is cancelled on a refusal", async () => {
    let cancelled = false;
    const z = zstdCompressSync(text);
    const src = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(z.slice(0, 8));
      },
      cancel() {
        cancelled = true;
      },
    });
    await assertRejects(() => collect(detectingDecompress(src, { expected: "gzip" })));
    assert(cancelled);
  });
});
