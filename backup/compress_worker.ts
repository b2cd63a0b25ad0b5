/**
 * A Worker of parallel_compress.ts: compresses one segment per message into one complete gzip
 * member or zstd frame, written into the output buffer that came with the task. Both buffers
 * travel back to the main thread (transferred) and are reused for later segments.
 *
 * Why not `gzipSync`/`zstdCompressSync`: they allocate their output (and a zlib stream) per call,
 * and a worker allocates so few JS objects that V8 rarely collects: dead output buffers piled up
 * to ~45 MB per backup (measured with two gzip workers). Instead we keep one compressor per
 * worker and drive its handle directly: `writeSync(<finish>, in, out)` compresses a whole segment
 * into our buffer (Z_FINISH for deflate, ZSTD_e_end for zstd), `reset()` starts the next member.
 * That handle is Node's internal zlib binding as Deno's node:zlib implements it (the same calls
 * Node's own `zlibBufferSync` makes, for both codecs); if it is missing or misbehaves, we fall
 * back to the one-shot call for the rest of the worker's life.
 */
import {
  constants,
  createGzip,
  createZstdCompress,
  gzipSync,
  type ZlibOptions,
  zstdCompressSync,
  type ZstdOptions,
} from "node:zlib";
import { type CompressionAlgorithm, magicBytes } from "./compression.ts";

/** A segment to compress: `buf[0, length)` with `algorithm` at `level`, into `out`. */
export interface CompressTask {
  seq: number;
  buf: ArrayBuffer;
  length: number;
  algorithm: CompressionAlgorithm;
  level: number;
  out: ArrayBuffer;
}

/** The answer to a {@link CompressTask}: the member in `member[0, length)`, or why it failed. */
export type CompressDone =
  | { seq: number; buf: ArrayBuffer; member: ArrayBuffer; length: number }
  | { seq: number; buf: ArrayBuffer; out: ArrayBuffer; error: string };

interface WorkerScope {
  onmessage: ((e: MessageEvent<CompressTask>) => void) | null;
  postMessage(message: CompressDone, transfer: Transferable[]): void;
}

/** The parts of Node's internal zlib handle we use. */
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  reset(): void;
}

interface Engine {
  handle: ZlibHandle;
  /** [available output, available input] after each write, as Node's binding reports it. */
  state: Uint32Array;
  /** The flush value that ends a member or frame. */
  finish: number;
  /** The bytes a complete member starts with, and its smallest size. */
  magic: readonly number[];
  minSize: number;
}

/** What differs between the codecs. */
interface Codec {
  create(level: number): unknown;
  oneShot(input: Uint8Array, level: number): Uint8Array;
  finish: number;
  minSize: number;
}

const gzipOptions = (level: number): ZlibOptions => ({ level });
const zstdOptions = (level: number): ZstdOptions => ({
  params: { [constants.ZSTD_c_compressionLevel]: level },
});

const CODECS: Record<CompressionAlgorithm, Codec> = {
  // 10-byte header + 8-byte trailer.
  gzip: {
    create: (l) => createGzip(gzipOptions(l)),
    oneShot: (i, l) => gzipSync(i, gzipOptions(l)),
    finish: constants.Z_FINISH,
    minSize: 18,
  },
  // 4-byte magic, frame header, one (possibly empty) block header.
  zstd: {
    create: (l) => createZstdCompress(zstdOptions(l)),
    oneShot: (i, l) => zstdCompressSync(i, zstdOptions(l)),
    finish: constants.ZSTD_e_end,
    minSize: 9,
  },
};

const scope = self as unknown as WorkerScope;
let engine: Engine | null | undefined;
let engineKind = "";

scope.onmessage = (e) => {
  const { seq, buf, length, algorithm, level, out } = e.data;
  try {
    const input = new Uint8Array(buf, 0, length);
    const n = compressInto(input, new Uint8Array(out), { algorithm, level });
    if (n !== undefined) {
      scope.postMessage({ seq, buf, member: out, length: n }, [buf, out]);
      return;
    }
    const z = CODECS[algorithm].oneShot(input, level);
    // A copy: a small Buffer may sit in Node's shared pool, which must not be detached.
    const member = z.byteLength <= out.byteLength ? out : new ArrayBuffer(z.byteLength);
    new Uint8Array(member).set(z);
    scope.postMessage({ seq, buf, member, length: z.byteLength }, [buf, member]);
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    scope.postMessage({ seq, buf, out, error }, [buf, out]);
  }
};

/** One member of `input` in `out`; its length, or undefined to fall back to the one-shot call. */
function compressInto(
  input: Uint8Array,
  out: Uint8Array,
  c: { algorithm: CompressionAlgorithm; level: number },
): number | undefined {
  const kind = `${c.algorithm}:${c.level}`;
  if (engine === undefined || engineKind !== kind) {
    engine = makeEngine(c.algorithm, c.level);
    engineKind = kind;
  }
  if (!engine) return undefined;
  try {
    engine.handle.writeSync(engine.finish, input, 0, input.byteLength, out, 0, out.byteLength);
    const [availOut, availIn] = engine.state;
    const n = out.byteLength - (availOut ?? out.byteLength);
    // A complete member: all input consumed, room left (the finish flush then wrote the end),
    // and the codec's magic bytes in front. Anything else: do not trust the handle again.
    if (
      availIn !== 0 || !availOut || n < engine.minSize ||
      !engine.magic.every((b, i) => out[i] === b)
    ) {
      engine = null;
      return undefined;
    }
    engine.handle.reset();
    return n;
  } catch {
    engine = null;
    return undefined;
  }
}

function makeEngine(algorithm: CompressionAlgorithm, level: number): Engine | null {
  const codec = CODECS[algorithm];
  const z = codec.create(level) as { _handle?: unknown; _writeState?: unknown };
  const handle = z._handle as Partial<ZlibHandle> | undefined;
  const state = z._writeState;
  if (
    typeof handle?.writeSync !== "function" || typeof handle.reset !== "function" ||
    !(state instanceof Uint32Array)
  ) {
    return null;
  }
  return {
    handle: handle as ZlibHandle,
    state,
    finish: codec.finish,
    magic: magicBytes(algorithm),
    minSize: codec.minSize,
  };
}
