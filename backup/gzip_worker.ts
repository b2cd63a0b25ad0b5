/**
 * A Worker of parallel_gzip.ts: compresses one segment per message into one complete gzip
 * member, written into the output buffer that came with the task. Both buffers travel back to
 * the main thread (transferred) and are reused for later segments.
 *
 * Why not `gzipSync`: it allocates its output (and a zlib stream) per call, and a worker
 * allocates so few JS objects that V8 rarely collects: dead output buffers piled up to ~45 MB
 * per backup (measured with two workers). Instead we keep one zlib stream per worker and drive
 * its handle directly: `writeSync(Z_FINISH, in, out)` deflates a whole segment into our buffer,
 * `reset()` starts the next member. That handle is Node's internal zlib binding as Deno's
 * node:zlib implements it (the same calls Node's own `zlibBufferSync` makes); if it is missing or
 * misbehaves, we fall back to `gzipSync` for the rest of the worker's life.
 */
import { constants, createGzip, gzipSync } from "node:zlib";

/** A segment to compress: `buf[0, length)` at `level`, into `out`. */
export interface GzipTask {
  seq: number;
  buf: ArrayBuffer;
  length: number;
  level: number;
  out: ArrayBuffer;
}

/** The answer to a {@link GzipTask}: the member in `member[0, length)`, or why it failed. */
export type GzipDone =
  | { seq: number; buf: ArrayBuffer; member: ArrayBuffer; length: number }
  | { seq: number; buf: ArrayBuffer; out: ArrayBuffer; error: string };

interface WorkerScope {
  onmessage: ((e: MessageEvent<GzipTask>) => void) | null;
  postMessage(message: GzipDone, transfer: Transferable[]): void;
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
}

const scope = self as unknown as WorkerScope;
let engine: Engine | null | undefined;
let engineLevel = -1;

scope.onmessage = (e) => {
  const { seq, buf, length, level, out } = e.data;
  try {
    const input = new Uint8Array(buf, 0, length);
    const n = deflateInto(input, new Uint8Array(out), level);
    if (n !== undefined) {
      scope.postMessage({ seq, buf, member: out, length: n }, [buf, out]);
      return;
    }
    const gz = gzipSync(input, { level });
    // A copy: a small Buffer may sit in Node's shared pool, which must not be detached.
    const member = gz.byteLength <= out.byteLength ? out : new ArrayBuffer(gz.byteLength);
    new Uint8Array(member).set(gz);
    scope.postMessage({ seq, buf, member, length: gz.byteLength }, [buf, member]);
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    scope.postMessage({ seq, buf, out, error }, [buf, out]);
  }
};

/** One gzip member of `input` in `out`; its length, or undefined to fall back to gzipSync. */
function deflateInto(input: Uint8Array, out: Uint8Array, level: number): number | undefined {
  if (engine === undefined || engineLevel !== level) {
    engine = makeEngine(level);
    engineLevel = level;
  }
  if (!engine) return undefined;
  try {
    engine.handle.writeSync(constants.Z_FINISH, input, 0, input.byteLength, out, 0, out.byteLength);
    const [availOut, availIn] = engine.state;
    const n = out.byteLength - (availOut ?? out.byteLength);
    // A complete member: all input consumed, room left (Z_FINISH then wrote the trailer), and
    // gzip's magic bytes in front. Anything else: do not trust the handle again.
    if (availIn !== 0 || !availOut || n < 18 || out[0] !== 0x1f || out[1] !== 0x8b) {
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

function makeEngine(level: number): Engine | null {
  const z = createGzip({ level }) as unknown as { _handle?: unknown; _writeState?: unknown };
  const handle = z._handle as Partial<ZlibHandle> | undefined;
  const state = z._writeState;
  if (
    typeof handle?.writeSync !== "function" || typeof handle.reset !== "function" ||
    !(state instanceof Uint32Array)
  ) {
    return null;
  }
  return { handle: handle as ZlibHandle, state };
}
