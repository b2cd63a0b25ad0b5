import { decompressStream } from "./streams.ts";
import { chunked } from "../tests/helpers/streams.ts";
import { assertEquals, assertRejects } from "../tests/helpers/assert.ts";

/** Text of `n` lines, compressible but not trivially so. */
function lines(n: number, tag: string): Uint8Array {
  let s = "";
  for (let i = 0; i < n; i++) s += `${tag}\t${i}\t${(i * 2654435761) % 1000003}\n`;
  return new TextEncoder().encode(s);
}

/** The real `zstd` CLI (with its default content checksum), as a user would make a dump. */
async function zstdCli(data: Uint8Array, args: string[] = []): Promise<Uint8Array> {
  const p = new Deno.Command("zstd", {
    args: ["-q", "-c", ...args],
    stdin: "piped",
    stdout: "piped",
  })
    .spawn();
  const [out] = await Promise.all([
    p.output(),
    new Blob([data as BufferSource]).stream().pipeTo(p.stdin),
  ]);
  return out.stdout;
}

const cat = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));

async function unzstd(z: Uint8Array, chunk: number): Promise<Uint8Array> {
  return new Uint8Array(
    await new Response(decompressStream(chunked(z, chunk), "zstd")).arrayBuffer(),
  );
}

Deno.test("zstd decompression reads every frame of a concatenation, in any chunking", async () => {
  // Small frames: their output never fills the decoder's buffer, the case Deno's decoder drops.
  const a = lines(50, "a");
  const b = lines(70, "b");
  const c = lines(40000, "c");
  const z = cat(await zstdCli(a), await zstdCli(b, ["--no-check"]), await zstdCli(c, ["-T0"]));
  for (const size of [1, 7, 4096, z.length]) {
    assertEquals(await unzstd(z, size), cat(a, b, c), `chunks of ${size}`);
  }
});

Deno.test("zstd decompression passes skippable frames and refuses truncation", async (t) => {
  const a = lines(100, "a");
  const za = await zstdCli(a);
  await t.step("a skippable frame between two frames", async () => {
    const skip = new Uint8Array([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
    assertEquals(await unzstd(cat(za, skip, za), 5), cat(a, a));
  });
  for (const cut of [1, 3, 4, 10]) {
    await t.step(`${cut} bytes cut off the end`, async () => {
      await assertRejects(() => unzstd(za.subarray(0, za.length - cut), 64));
    });
  }
  await t.step("garbage after a frame", async () => {
    await assertRejects(
      () => unzstd(cat(za, new Uint8Array([1, 2, 3, 4, 5])), 64),
    );
  });
});
