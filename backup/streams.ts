/**
 * The stream stages of backup and restore. Every stage is pull-based with a small, fixed queue,
 * so a slow consumer (the upload) stops reads from the producer (pg_dump's pipe), and memory
 * stays bounded whatever the database size.
 */
import {
  constants,
  createGunzip,
  createGzip,
  createZstdCompress,
  createZstdDecompress,
} from "node:zlib";
import { createHash, type Hash } from "node:crypto";
import type { Transform } from "node:stream";
import type { Clock } from "../lib/clock.ts";
import type { CompressionAlgorithm } from "./compression.ts";
import { zstdFrames } from "./zstd_frames.ts";

const CHUNK = 64 * 1024;

/** A codec and its level (compression.ts; callers checked the range). */
export interface Compression {
  algorithm: CompressionAlgorithm;
  level: number;
}

function compressor(c: Compression): Transform {
  return c.algorithm === "zstd"
    ? createZstdCompress({
      chunkSize: CHUNK,
      params: { [constants.ZSTD_c_compressionLevel]: c.level },
    })
    : createGzip({ level: c.level, chunkSize: CHUNK });
}

function decompressor(algorithm: CompressionAlgorithm): Transform {
  return algorithm === "zstd"
    ? createZstdDecompress({ chunkSize: CHUNK })
    : createGunzip({ chunkSize: CHUNK });
}

/**
 * Runs `source` through a node:zlib transform, bridged by hand: it measured faster and leaner
 * under Deno than `Duplex.toWeb` and than CompressionStream (which has no level option). The
 * zlib side pauses when the web side's queue is full; writes wait for `drain`.
 */
function throughZlib(source: ReadableStream<Uint8Array>, z: Transform): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return zlibOutput(z, () => pump(reader, z), (reason) => reader.cancel(reason));
}

/** The web side of a zlib transform: pauses zlib while the queue is full; owns the pump. */
function zlibOutput(
  z: Transform,
  pumpInput: () => Promise<void>,
  cancelInput: (reason: unknown) => Promise<void>,
): ReadableStream<Uint8Array> {
  let finished = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      z.on("data", (b: Uint8Array) => {
        if (finished) return;
        controller.enqueue(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) z.pause();
      });
      z.once("end", () => {
        if (finished) return;
        finished = true;
        controller.close();
      });
      z.once("error", (e: unknown) => {
        if (finished) return;
        finished = true;
        controller.error(e);
        cancelInput(e).catch(() => {});
      });
      // The pump is owned by this stream: its failures end up as the stream's error.
      pumpInput().catch((e) => {
        if (!finished) z.destroy(e instanceof Error ? e : new Error(String(e)));
      });
    },
    pull() {
      z.resume();
    },
    cancel(reason) {
      finished = true;
      z.destroy();
      return cancelInput(reason);
    },
  }, { highWaterMark: 4 });
}

async function pump(reader: ReadableStreamDefaultReader<Uint8Array>, z: Transform): Promise<void> {
  for (;;) {
    const r = await reader.read();
    if (r.done) {
      z.end();
      return;
    }
    if (!z.write(r.value)) await drained(z);
  }
}

/** Hooks of {@link compressFromPipe}, standing in for a {@link tap} on its input. */
export interface PipeHooks {
  onChunk?: (chunk: Uint8Array) => void;
  /** Awaited at the end of input; throwing errors the output instead of finishing it. */
  beforeEnd?: () => void | Promise<void>;
  onCancel?: (reason: unknown) => void;
}

/**
 * Compresses a byte stream (a child's stdout) as one gzip member or zstd frame, on this thread,
 * reading it with a BYOB reader into two reused buffers: a buffer is read into again only after
 * zlib has consumed it. Reading with a default reader allocates a fresh 64 KiB chunk per read,
 * which V8 frees lazily; on a multi-GB dump that garbage alone measured ~70 MB of RSS. With BYOB
 * it is ~0.
 */
export function compressFromPipe(
  source: ReadableStream<Uint8Array>,
  c: Compression,
  hooks: PipeHooks = {},
): ReadableStream<Uint8Array> {
  let reader: ReadableStreamBYOBReader;
  try {
    reader = source.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: the generic path.
    const tapped = tap(source, {
      ...(hooks.onChunk ? { onChunk: hooks.onChunk } : {}),
      ...(hooks.beforeEnd ? { beforeClose: hooks.beforeEnd } : {}),
      ...(hooks.onCancel ? { onCancel: hooks.onCancel } : {}),
    });
    return compressStream(tapped, c);
  }
  const z = compressor(c);
  return zlibOutput(z, () => pumpByob(reader, z, hooks), (reason) => {
    hooks.onCancel?.(reason);
    return reader.cancel(reason);
  });
}

async function pumpByob(
  reader: ReadableStreamBYOBReader,
  z: Transform,
  hooks: PipeHooks,
): Promise<void> {
  const free: ArrayBuffer[] = [new ArrayBuffer(CHUNK), new ArrayBuffer(CHUNK)];
  const inflight: Promise<ArrayBuffer>[] = [];
  for (;;) {
    const buf = free.pop() ?? await inflight.shift()!;
    const r = await reader.read(new Uint8Array(buf));
    if (r.done) {
      await hooks.beforeEnd?.();
      z.end();
      return;
    }
    const view = r.value;
    hooks.onChunk?.(view);
    let ok = true;
    inflight.push(
      new Promise<ArrayBuffer>((resolve, reject) => {
        ok = z.write(view, (err) => err ? reject(err) : resolve(view.buffer as ArrayBuffer));
      }),
    );
    // A write error also surfaces as the stream's 'error'; this only keeps the promise handled.
    inflight.at(-1)!.catch(() => {});
    if (!ok) await drained(z);
  }
}

function drained(z: Transform): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = () => {
      z.off("close", onClose);
      resolve();
    };
    const onClose = () => {
      z.off("drain", onDrain);
      reject(new Error("Compressor closed"));
    };
    z.once("drain", onDrain);
    z.once("close", onClose);
  });
}

/** Compresses a stream as one gzip member or zstd frame. */
export function compressStream(
  source: ReadableStream<Uint8Array>,
  c: Compression,
): ReadableStream<Uint8Array> {
  return throughZlib(source, compressor(c));
}

/**
 * Decompresses a gzip or zstd stream (any number of concatenated members or frames); a
 * truncated or corrupt input errors the stream.
 */
export function decompressStream(
  source: ReadableStream<Uint8Array>,
  algorithm: CompressionAlgorithm,
): ReadableStream<Uint8Array> {
  // zstd one frame per write: see zstd_frames.ts for the decoder's quirk this works around.
  const input = algorithm === "zstd" ? source.pipeThrough(zstdFrames()) : source;
  return throughZlib(input, decompressor(algorithm));
}

/** Counts bytes and hashes them incrementally (node:crypto; WebCrypto cannot digest a stream). */
export class Meter {
  bytes = 0;
  readonly #hash: Hash = createHash("sha256");
  #digest: string | undefined;

  update(chunk: Uint8Array): void {
    this.bytes += chunk.byteLength;
    this.#hash.update(chunk);
  }

  /** Hex SHA-256 of everything seen; final (later updates are an error). */
  sha256(): string {
    this.#digest ??= this.#hash.digest("hex");
    return this.#digest;
  }
}

/** Options of {@link tap}. */
export interface TapOptions {
  /** Called for each chunk before it is passed on. */
  onChunk?: (chunk: Uint8Array) => void;
  /**
   * Called when the source ended, before the end is passed on; throwing or rejecting errors the
   * stream instead of closing it (how a failed pg_dump or a checksum mismatch stops a clean end).
   */
  beforeClose?: () => void | Promise<void>;
  /** Called when reading the source failed, before the error is passed on. */
  onError?: (e: unknown) => void;
  /** Called when the consumer cancelled the stream (e.g. a failed upload gave up reading). */
  onCancel?: (reason: unknown) => void;
}

/** A pass-through that observes chunks and can veto the end of the stream. No read-ahead. */
export function tap(
  source: ReadableStream<Uint8Array>,
  opts: TapOptions,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        opts.onError?.(e);
        throw e;
      }
      if (r.done) {
        await opts.beforeClose?.();
        controller.close();
        return;
      }
      opts.onChunk?.(r.value);
      controller.enqueue(r.value);
    },
    cancel: (reason) => {
      opts.onCancel?.(reason);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Holds back the last chunk until the source ended and `verify` passed, so a consumer never sees
 * the complete input (and cannot finish, e.g. commit a restore) before verification.
 */
export function holdLast(
  source: ReadableStream<Uint8Array>,
  verify: () => void | Promise<void>,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let held: Uint8Array | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const r = await reader.read();
        if (r.done) {
          await verify();
          if (held) controller.enqueue(held);
          controller.close();
          return;
        }
        const prev = held;
        held = r.value;
        if (prev) {
          controller.enqueue(prev);
          return;
        }
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * A progress reporter: the returned function calls `emit` with the elapsed time at most once per
 * `everyMs`, and always when `final` is true. Without `emit` it does nothing.
 */
export function throttled(
  clock: Clock,
  everyMs: number,
  emit: ((elapsedMs: number) => void) | undefined,
): (final: boolean) => void {
  const start = clock.now();
  let last = start;
  return (final) => {
    const now = clock.now();
    if (!emit || (!final && now - last < everyMs)) return;
    last = now;
    emit(now - start);
  };
}

/** What a job's caller asks of its progress reports. */
export interface ProgressOptions<P> {
  onProgress?: ((p: P & { elapsedMs: number }) => void) | undefined;
  /** Minimum time between two reports; default 2000 ms. */
  progressIntervalMs?: number | undefined;
}

/**
 * The throttled reporter of a job ({@link throttled}): each report is `snapshot()` (the meters'
 * counts) with the elapsed time.
 */
export function progressReporter<P>(
  clock: Clock,
  opts: ProgressOptions<P>,
  snapshot: () => P,
): (final: boolean) => void {
  const onProgress = opts.onProgress;
  return throttled(
    clock,
    opts.progressIntervalMs ?? 2000,
    onProgress && ((elapsedMs) => onProgress({ ...snapshot(), elapsedMs })),
  );
}

/** Calls `f` once when `signal` aborts; the returned function stops listening. */
export function onAbort(signal: AbortSignal | undefined, f: () => void): () => void {
  signal?.addEventListener("abort", f, { once: true });
  return () => signal?.removeEventListener("abort", f);
}
