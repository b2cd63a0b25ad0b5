/**
 * pigz-style compression: the input is cut into fixed segments, each compressed into an
 * independent gzip member or zstd frame by a small pool of Workers, and they are emitted in
 * input order. Concatenated gzip members are one valid gzip stream (RFC 1952 §2.2), and
 * concatenated zstd frames one valid zstd stream (RFC 8878 §3.1): gunzip, `gzip -t`, `zstd -t`,
 * node:zlib's decompressors and so our restore read it as a whole. (The libzstd in Deno's
 * node:zlib has no worker threads of its own: `ZSTD_c_nbWorkers` fails, hence this pool.)
 *
 * Memory is bounded: at most `2 × workers` segments are submitted and not yet taken by the
 * consumer, plus the one being filled. When the consumer (the upload) stops reading, the queue
 * fills, the producer stops reading the source, and backpressure reaches pg_dump's pipe.
 * Segment and output buffers are reused (transferred to a worker and back), and a member is
 * copied for the consumer only when the consumer asks for it: a buffer transferred in from a
 * worker is freed only by a full GC, while the copy dies young (measured: ~35 MB less peak RSS).
 *
 * Cost: each member restarts the codec's window (deflate's 32 KiB, zstd's history): ~0.1% larger
 * gzip output at 1 MiB segments; for zstd, whose window is much larger, +5% on the benchmark dump
 * (65.4 vs 62.0 MB at level 3, bench/RESULTS.md), still below gzip -6's size.
 */
import type { CompressionAlgorithm } from "./compression.ts";
import type { CompressDone, CompressTask } from "./compress_worker.ts";
import type { PipeHooks } from "./streams.ts";

const MiB = 1024 * 1024;

/** Options of {@link parallelCompress}. */
export interface ParallelCompressOptions extends PipeHooks {
  /** Default gzip. */
  algorithm?: CompressionAlgorithm;
  /** The algorithm's level (compression.ts; the caller checked the range). */
  level: number;
  /** Workers compressing concurrently (≥ 1). */
  workers: number;
  /** Uncompressed bytes per member or frame; default 1 MiB. */
  segmentSize?: number;
}

/**
 * Compresses `source` in Workers. `onChunk` sees each input segment, `beforeEnd` is awaited
 * at the end of input (throwing errors the output instead of ending it), and `onCancel` is called
 * when the consumer cancels. The workers are terminated when the output ends, errors or is
 * cancelled.
 */
export function parallelCompress(
  source: ReadableStream<Uint8Array>,
  opts: ParallelCompressOptions,
): ReadableStream<Uint8Array> {
  const segmentSize = opts.segmentSize ?? MiB;
  const capacity = 2 * opts.workers;
  const input = segmentReader(source);
  const pool = new CompressPool(opts.workers, {
    algorithm: opts.algorithm ?? "gzip",
    level: opts.level,
    outputSize: outputBound(segmentSize),
  });
  const queue: Promise<Compressed>[] = [];
  let ended = false;
  let failure: { error: unknown } | undefined;
  let wakeConsumer = () => {};
  let wakeProducer = () => {};
  const stop = (reason: unknown) => {
    pool.close();
    wakeProducer();
    return input.cancel(reason);
  };

  async function produce(): Promise<void> {
    const spare: ArrayBuffer[] = [];
    for (let first = true;; first = false) {
      while (queue.length >= capacity && !pool.closed) {
        await new Promise<void>((r) => wakeProducer = r);
      }
      if (pool.closed) return;
      const seg = await input.fill(spare.pop() ?? new ArrayBuffer(segmentSize));
      if (pool.closed) return; // cancelled or failed while reading
      // An empty input still makes one (empty) member: zero bytes are no gzip or zstd stream.
      if (seg.length > 0 || first) {
        opts.onChunk?.(new Uint8Array(seg.buf, 0, seg.length));
        const member = pool.compress(seg.buf, seg.length, (buf) => spare.push(buf));
        member.catch(() => {}); // awaited by the consumer; this only marks it handled
        queue.push(member);
        wakeConsumer();
      }
      if (seg.done) {
        await opts.beforeEnd?.();
        ended = true;
        wakeConsumer();
        return;
      }
    }
  }

  return new ReadableStream<Uint8Array>({
    start() {
      // The producer belongs to this stream: its failure becomes the stream's error.
      produce().catch((error) => {
        failure ??= { error };
        wakeConsumer();
      });
    },
    async pull(controller) {
      while (queue.length === 0 && !ended && !failure) {
        await new Promise<void>((r) => wakeConsumer = r);
      }
      try {
        if (failure) throw failure.error;
        const next = queue[0];
        if (!next) {
          pool.close();
          controller.close();
          return;
        }
        const done = await next;
        queue.shift();
        wakeProducer();
        const member = new Uint8Array(done.member, 0, done.length).slice();
        pool.recycleOutput(done.member);
        controller.enqueue(member);
      } catch (e) {
        await stop(e).catch(() => {});
        throw e;
      }
    },
    cancel(reason) {
      opts.onCancel?.(reason);
      return stop(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Room for one member of a `segment`-byte input even if the codec falls back to stored blocks
 * (deflate adds 5 bytes per 16 KiB block, zstd 3 per 128 KiB block). Should a codec need more, the
 * worker sees the output full and falls back to its one-shot call (compress_worker.ts).
 */
function outputBound(segment: number): number {
  return segment + (segment >> 10) + 1024;
}

interface Segment {
  buf: ArrayBuffer;
  length: number;
  /** The source ended (this segment may be short or empty). */
  done: boolean;
}

/** Fills whole segments from a byte stream (BYOB, no extra copy) or any other stream. */
function segmentReader(source: ReadableStream<Uint8Array>) {
  let byob: ReadableStreamBYOBReader | undefined;
  let plain: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    byob = source.getReader({ mode: "byob" });
  } catch {
    plain = source.getReader();
  }
  let leftover: Uint8Array | undefined;
  return {
    async fill(buf: ArrayBuffer): Promise<Segment> {
      const size = buf.byteLength;
      let length = 0;
      while (length < size) {
        if (byob) {
          const r = await byob.read(new Uint8Array(buf, length, size - length));
          if (r.value) buf = r.value.buffer as ArrayBuffer;
          if (r.done) return { buf, length, done: true };
          length += r.value.byteLength;
          continue;
        }
        const chunk = leftover ?? (await plain!.read()).value;
        if (!chunk) return { buf, length, done: true };
        const n = Math.min(chunk.byteLength, size - length);
        new Uint8Array(buf, length, n).set(chunk.subarray(0, n));
        leftover = n < chunk.byteLength ? chunk.subarray(n) : undefined;
        length += n;
      }
      return { buf, length, done: false };
    },
    cancel: (reason: unknown) => (byob ?? plain)!.cancel(reason),
  };
}

/** A member in `member[0, length)`; `member` goes back to the pool once copied. */
interface Compressed {
  member: ArrayBuffer;
  length: number;
}

interface Pending {
  resolve: (c: Compressed) => void;
  reject: (e: Error) => void;
  recycle: (buf: ArrayBuffer) => void;
}

interface PoolOptions {
  algorithm: CompressionAlgorithm;
  level: number;
  /** Bytes of each output buffer. */
  outputSize: number;
}

/** The Workers; segment `seq` goes to worker `seq mod n`, which answers in order. */
class CompressPool {
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #outputs: ArrayBuffer[] = [];
  readonly #algorithm: CompressionAlgorithm;
  readonly #level: number;
  readonly #outputSize: number;
  #seq = 0;
  #closed = false;

  constructor(size: number, o: PoolOptions) {
    this.#algorithm = o.algorithm;
    this.#level = o.level;
    this.#outputSize = o.outputSize;
    for (let i = 0; i < size; i++) {
      // A literal URL relative to this module, so `deno compile --include` can embed it.
      const w = new Worker(new URL("./compress_worker.ts", import.meta.url).href, {
        type: "module",
      });
      w.onmessage = (e: MessageEvent<CompressDone>) => this.#done(e.data);
      w.onerror = (e) => {
        // Handled here: unhandled, a worker's error would take the whole process down.
        e.preventDefault();
        this.#fail(new Error(`Compression worker failed: ${e.message}`));
      };
      this.#workers.push(w);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Compresses `buf[0, length)`; `recycle` gets `buf` back once the worker is done with it. */
  compress(buf: ArrayBuffer, length: number, recycle: (buf: ArrayBuffer) => void) {
    if (this.#closed) return Promise.reject(new Error("Compression workers were stopped"));
    const out = this.#outputs.pop() ?? new ArrayBuffer(this.#outputSize);
    const task: CompressTask = {
      seq: this.#seq++,
      buf,
      length,
      algorithm: this.#algorithm,
      level: this.#level,
      out,
    };
    return new Promise<Compressed>((resolve, reject) => {
      this.#pending.set(task.seq, { resolve, reject, recycle });
      this.#workers[task.seq % this.#workers.length]!.postMessage(task, [buf, out]);
    });
  }

  /** Returns an output buffer once its member was copied. */
  recycleOutput(buf: ArrayBuffer): void {
    if (buf.byteLength === this.#outputSize) this.#outputs.push(buf);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#workers) w.terminate();
    this.#fail(new Error("Compression workers were stopped"));
  }

  #done(msg: CompressDone): void {
    const p = this.#pending.get(msg.seq);
    if (!p) return;
    this.#pending.delete(msg.seq);
    p.recycle(msg.buf);
    if ("error" in msg) {
      this.recycleOutput(msg.out);
      p.reject(new Error(`Cannot compress the backup: ${msg.error}`));
    } else {
      p.resolve({ member: msg.member, length: msg.length });
    }
  }

  #fail(e: Error): void {
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }
}
