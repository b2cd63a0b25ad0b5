/**
 * Decompressing a stored plain dump whose codec is decided by its first bytes: a gzip member
 * (1F 8B) or a zstd frame (28 B5 2F FD). The manifest, when there is one, says which codec the
 * backup wrote; the bytes must agree with it. The object's name never decides.
 */
import { type CompressionAlgorithm, detectAlgorithm, MAGIC_LENGTH } from "./compression.ts";
import { decompressStream } from "./streams.ts";

/** Options of {@link detectingDecompress}. */
export interface DetectOptions {
  /** The codec the manifest records; a stream of another codec is an error. */
  expected?: CompressionAlgorithm | undefined;
  /** Called once the codec is known. */
  onDetect?: (algorithm: CompressionAlgorithm) => void;
}

/**
 * The decompressed bytes of `source`, a gzip or zstd stream (any number of concatenated
 * members or frames). Errors the stream when the first bytes are neither codec's, or not the
 * expected one.
 */
export function detectingDecompress(
  source: ReadableStream<Uint8Array>,
  opts: DetectOptions = {},
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let inner: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        inner ??= await open(reader, opts);
        const r = await inner.read();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      } catch (e) {
        await (inner ?? reader).cancel(e).catch(() => {});
        throw e;
      }
    },
    cancel: (reason) => (inner ?? reader).cancel(reason),
  }, { highWaterMark: 0 });
}

async function open(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  opts: DetectOptions,
): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const { head, ended } = await readHead(reader);
  const found = detectAlgorithm(head);
  if (!found) {
    const hex = [...head.subarray(0, MAGIC_LENGTH)]
      .map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new Error(
      `it is neither a gzip nor a zstd stream (it starts with ${hex || "nothing"})`,
    );
  }
  if (opts.expected && found !== opts.expected) {
    throw new Error(`its manifest says ${opts.expected}, but the object is a ${found} stream`);
  }
  opts.onDetect?.(found);
  const rest = new ReadableStream<Uint8Array>({
    start(c) {
      if (head.byteLength) c.enqueue(head);
      if (ended) c.close();
    },
    async pull(c) {
      const r = await reader.read();
      if (r.done) c.close();
      else c.enqueue(r.value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return decompressStream(rest, found).getReader();
}

/** At least {@link MAGIC_LENGTH} bytes from the front (fewer only when the stream ended). */
async function readHead(reader: ReadableStreamDefaultReader<Uint8Array>) {
  const parts: Uint8Array[] = [];
  let n = 0;
  while (n < MAGIC_LENGTH) {
    const r = await reader.read();
    if (r.done) return { head: concat(parts, n), ended: true };
    parts.push(r.value);
    n += r.value.byteLength;
  }
  return { head: concat(parts, n), ended: false };
}

function concat(parts: Uint8Array[], n: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
