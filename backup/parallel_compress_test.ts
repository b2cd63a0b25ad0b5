import { gunzipSync, gzipSync, zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { parallelCompress } from "./parallel_compress.ts";
import { decompressStream } from "./streams.ts";
import type { CompressionAlgorithm } from "./compression.ts";
import { collect } from "../tests/helpers/streams.ts";
import { assert, assertEquals, assertRejects } from "../tests/helpers/assert.ts";

const KiB = 1024;

/** Dump-like bytes: compressible text with some entropy, deterministic. */
function sample(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let x = 2463534242;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) % 7 === 0 ? 10 : 97 + ((x >>> 8) % 16);
  }
  return out;
}

/** A byte stream (BYOB-capable, like a child's stdout) over `data`, in `chunk`-byte reads. */
function byteStream(data: Uint8Array, chunk = 64 * KiB): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    type: "bytes",
    pull(c) {
      if (off >= data.byteLength) {
        c.close();
        c.byobRequest?.respond(0);
        return;
      }
      const n = Math.min(chunk, data.byteLength - off);
      c.enqueue(data.slice(off, off + n));
      off += n;
    },
  });
}

/** Runs the real `gzip` or `zstd` (the tools a user restores with by hand) on `input`. */
async function tool(
  name: CompressionAlgorithm,
  args: string[],
  input: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  const p = new Deno.Command(name, { args, stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  // Written while the output is read: a pipe holds only 64 KiB.
  const [out] = await Promise.all([p.output(), new Blob([input]).stream().pipeTo(p.stdin)]);
  assert(out.success, `${name} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

const decompressSync = (a: CompressionAlgorithm, z: Uint8Array) =>
  new Uint8Array(a === "gzip" ? gunzipSync(z) : zstdDecompressSync(z));

for (const algorithm of ["gzip", "zstd"] as const) {
  Deno.test(`parallelCompress ${algorithm}: one valid stream of the input, in order`, async (t) => {
    const seg = 64 * KiB;
    const lvl = algorithm === "gzip"
      ? { usual: 6, high: 9, low: 0 }
      : { usual: 3, high: 19, low: 1 };
    const cases: [string, number, number, number][] = [
      // name, size, workers, level
      ["empty input", 0, 2, lvl.usual],
      ["shorter than a segment", 1000, 2, lvl.usual],
      ["an exact multiple of the segment size", 8 * seg, 2, lvl.usual],
      ["many segments and a remainder, one worker", 13 * seg + 17, 1, lvl.usual],
      ["many segments and a remainder, three workers", 21 * seg + 5, 3, lvl.high],
      ["lowest level", 5 * seg + 3, 2, lvl.low],
    ];
    for (const [name, size, workers, level] of cases) {
      await t.step(name, async () => {
        const data = sample(size);
        const seen: number[] = [];
        const z = await collect(
          parallelCompress(byteStream(data), {
            algorithm,
            level,
            workers,
            segmentSize: seg,
            onChunk: (c) => seen.push(c.byteLength),
          }),
        );
        assertEquals(seen.reduce((a, b) => a + b, 0), size);
        // Our restore path, node:zlib, and the real gzip / zstd all read the concatenation.
        assertEquals(await collect(decompressStream(new Blob([z]).stream(), algorithm)), data);
        assertEquals(decompressSync(algorithm, z), data);
        assertEquals(await tool(algorithm, ["-dc"], z), data);
        await tool(algorithm, ["-t"], z);
      });
    }
  });
}

Deno.test("parallelCompress zstd: one frame per segment, each with zstd's magic bytes", async () => {
  const seg = 64 * KiB;
  const data = sample(3 * seg);
  const z = await collect(
    parallelCompress(byteStream(data), {
      algorithm: "zstd",
      level: 3,
      workers: 2,
      segmentSize: seg,
    }),
  );
  const magic = [0x28, 0xb5, 0x2f, 0xfd];
  let frames = 0;
  for (let i = 0; i + 4 <= z.length; i++) {
    if (magic.every((b, j) => z[i + j] === b)) frames++;
  }
  // At least the three frames (random-looking data may contain the magic by chance: rare).
  assert(frames >= 3, `${frames} frames`);
  assertEquals(decompressSync("zstd", z.subarray(0, z.length)), data);
});

Deno.test("parallelCompress zstd output is within a few percent of one zstd stream", async () => {
  const data = sample(4 * 1024 * KiB);
  const z = await collect(
    parallelCompress(byteStream(data), { algorithm: "zstd", level: 3, workers: 2 }),
  );
  const single = zstdCompressSync(data).byteLength;
  assert(z.byteLength < single * 1.03, `${z.byteLength} vs ${single}`);
});

Deno.test("parallelCompress accepts a stream without BYOB support", async () => {
  const data = sample(300 * KiB + 1);
  const parts = [data.subarray(0, 1), data.subarray(1, 200 * KiB), data.subarray(200 * KiB)];
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      const p = parts.shift();
      if (p) c.enqueue(p);
      else c.close();
    },
  });
  const gz = await collect(
    parallelCompress(source, { level: 6, workers: 2, segmentSize: 64 * KiB }),
  );
  assertEquals(new Uint8Array(gunzipSync(gz)), data);
});

Deno.test("parallelCompress output is within a few percent of one gzip stream", async () => {
  const data = sample(4 * 1024 * KiB);
  const gz = await collect(parallelCompress(byteStream(data), { level: 6, workers: 2 }));
  const single = gzipSync(data, { level: 6 }).byteLength;
  assert(gz.byteLength < single * 1.02, `${gz.byteLength} vs ${single}`);
});

Deno.test("parallelCompress stops reading its source while the consumer does not read", async () => {
  const seg = 64 * KiB;
  let produced = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      produced += 16 * KiB;
      c.enqueue(sample(16 * KiB));
    },
  }, { highWaterMark: 0 });
  const out = parallelCompress(source, { level: 1, workers: 2, segmentSize: seg });
  const reader = out.getReader();
  await reader.read();
  await new Promise((r) => setTimeout(r, 300));
  // 2 × workers segments queued, one taken by the consumer, one being filled, one chunk ahead.
  const bound = (2 * 2 + 2) * seg + 16 * KiB;
  assert(produced <= bound, `read ${produced} bytes ahead of a stalled consumer`);
  const before = produced;
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(produced, before);
  await reader.cancel(new Error("done"));
});

Deno.test("parallelCompress failures", async (t) => {
  await t.step("beforeEnd throwing errors the output instead of ending it", async () => {
    const out = parallelCompress(byteStream(sample(200 * KiB)), {
      level: 6,
      workers: 2,
      segmentSize: 64 * KiB,
      beforeEnd: () => {
        throw new Error("pg_dump exited 1");
      },
    });
    await assertRejects(() => collect(out), Error, "pg_dump exited 1");
  });

  await t.step("a source error errors the output", async () => {
    let n = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        if (n++ === 5) c.error(new Error("pipe broke"));
        else c.enqueue(sample(32 * KiB));
      },
    });
    const out = parallelCompress(source, { level: 6, workers: 2, segmentSize: 64 * KiB });
    await assertRejects(() => collect(out), Error, "pipe broke");
  });

  await t.step("cancelling the output cancels the source and calls onCancel", async () => {
    let cancelled: unknown;
    let hook: unknown;
    const source = new ReadableStream<Uint8Array>({
      pull: (c) => c.enqueue(sample(32 * KiB)),
      cancel: (reason) => {
        cancelled = reason;
      },
    });
    const out = parallelCompress(source, {
      level: 6,
      workers: 2,
      segmentSize: 64 * KiB,
      onCancel: (r) => hook = r,
    });
    const reader = out.getReader();
    await reader.read();
    const why = new Error("upload failed");
    await reader.cancel(why);
    assertEquals(cancelled, why);
    assertEquals(hook, why);
  });
});
