/** Byte streams for unit tests of stream stages. */

/** `data` as a stream of `size`-byte chunks (the last may be shorter). */
export function chunked(data: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= data.length) return c.close();
      c.enqueue(data.slice(off, off + size));
      off += size;
    },
  });
}

/** Every byte of `s`. */
export async function collect(s: ReadableStream<Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}
