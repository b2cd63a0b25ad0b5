/**
 * Re-chunks a zstd stream at its frame boundaries (RFC 8878 §3.1), and errors it when it ends
 * inside a frame.
 *
 * Why: Deno's node:zlib zstd decompressor (Deno 2.9.6) stops at the end of a frame when its
 * output buffer is not full and drops the rest of that write, so `zstdDecompressSync(a + b)`
 * returns only `a`; and a truncated frame ends the output silently. Fed one frame per write it
 * reads any number of frames, and this walk over the frame and block headers notices a
 * truncated stream. Skippable frames are passed on as frames of their own (the decoder skips
 * them).
 */

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

type Then = "blockHeader" | "frameEnd";

/** What the walker waits for next: a header (gathered byte by byte) or `#remaining` bytes. */
type Need =
  | { kind: "magic" }
  | { kind: "frameHeader" }
  | { kind: "blockHeader" }
  | { kind: "skippableSize" }
  | { kind: "bytes"; then: Then };

/** A TransformStream that passes zstd bytes on, one frame per chunk or less; see the module doc. */
export function zstdFrames(): TransformStream<Uint8Array, Uint8Array> {
  const w = new FrameWalker();
  return new TransformStream({
    transform: (chunk, controller) => w.push(chunk, (c) => controller.enqueue(c)),
    flush: () => w.end(),
  });
}

class FrameWalker {
  #need: Need = { kind: "magic" };
  /** Header bytes gathered so far (headers may span chunks). */
  #head: number[] = [];
  #remaining = 0;
  #checksum = false;

  push(chunk: Uint8Array, emit: (c: Uint8Array) => void): void {
    let start = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.#need.kind === "bytes") {
        const n = Math.min(this.#remaining, chunk.length - i);
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) {
          this.#need = { kind: this.#need.then === "frameEnd" ? "magic" : "blockHeader" };
        }
      } else {
        this.#head.push(chunk[i++]!);
        this.#header();
      }
      if (this.#need.kind === "magic" && this.#head.length === 0 && i > start) {
        emit(chunk.subarray(start, i)); // a frame ended: what follows goes in its own write
        start = i;
      }
    }
    if (i > start) emit(chunk.subarray(start, i));
  }

  end(): void {
    if (this.#need.kind !== "magic" || this.#head.length > 0) {
      throw new Error("Truncated zstd stream: it ends inside a frame");
    }
  }

  /** Skips `n` bytes of content, then expects `then`. */
  #skip(n: number, then: Then): void {
    this.#head = [];
    this.#remaining = n;
    this.#need = n > 0 ? { kind: "bytes", then } : { kind: then === "frameEnd" ? "magic" : then };
  }

  /** Consumes `#head` once it holds a whole header of the kind awaited. */
  #header(): void {
    const h = this.#head;
    switch (this.#need.kind) {
      case "magic": {
        if (h.length < 4) return;
        const magic = (h[0]! | h[1]! << 8 | h[2]! << 16 | h[3]! << 24) >>> 0;
        if (magic === ZSTD_MAGIC) this.#need = { kind: "frameHeader" };
        else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          this.#need = { kind: "skippableSize" };
        } else {
          throw new Error("Corrupt zstd stream: no zstd frame where one should start");
        }
        return;
      }
      case "frameHeader": {
        // h[4] is the Frame_Header_Descriptor; the header's length follows from it.
        if (h.length < 5) return;
        const fhd = h[4]!;
        const fcsFlag = fhd >> 6;
        const single = (fhd >> 5) & 1;
        const dictBytes = [0, 1, 2, 4][fhd & 3]!;
        const fcsBytes = [single, 2, 4, 8][fcsFlag]!;
        if (h.length < 5 + (single ? 0 : 1) + dictBytes + fcsBytes) return;
        this.#checksum = ((fhd >> 2) & 1) === 1;
        this.#head = [];
        this.#need = { kind: "blockHeader" };
        return;
      }
      case "blockHeader": {
        if (h.length < 3) return;
        const v = h[0]! | h[1]! << 8 | h[2]! << 16;
        const last = (v & 1) === 1;
        const type = (v >> 1) & 3;
        if (type === 3) throw new Error("Corrupt zstd stream: reserved block type");
        // An RLE block holds one byte; the last block is followed by the optional checksum.
        const size = (type === 1 ? 1 : v >>> 3) + (last && this.#checksum ? 4 : 0);
        this.#skip(size, last ? "frameEnd" : "blockHeader");
        return;
      }
      case "skippableSize": {
        if (h.length < 8) return;
        const n = (h[4]! | h[5]! << 8 | h[6]! << 16 | h[7]! << 24) >>> 0;
        this.#skip(n, "frameEnd");
        return;
      }
      case "bytes":
        return;
    }
  }
}
