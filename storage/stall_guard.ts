/**
 * An {@link ObjectStore} wrapper that fails a call with StorageError("Stalled") as soon as the
 * storage under it stalls (stall.ts says when), whichever backend it is. The call's own signal
 * is aborted with that error, so the backend cancels what it can and cleans up its upload as
 * it would after any abort; the wrapper does not wait for that cleanup (against a storage that
 * does not answer it can take the SDK's whole timeout) but keeps it, and `close` waits for it
 * after closing the backend, whose sockets then fail at once.
 */
import { type Clock, systemClock } from "../lib/clock.ts";
import { humanDuration } from "../lib/format.ts";
import { requestAborted } from "./errors.ts";
import { StallTimer, StallWatch } from "./stall.ts";
import {
  type CallOptions,
  type ObjectHead,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  StorageError,
} from "./store.ts";

/** Options of {@link guardStalls}. */
export interface StallGuardOptions {
  /** How long the storage may owe the next step (`--backup-stall-timeout`). */
  timeoutMs: number;
  /** Names the storage in messages, e.g. `BackupStorage "archive"`. */
  subject: string;
  /** Appended to the message in parentheses, e.g. the flag that sets the timeout. */
  hint?: string;
  clock?: Clock;
  /** Called once per stalled call, with what stalled ("upload", "head", ...). */
  onStall?: (what: string) => void;
}

/** Wraps `store` so that every call fails with StorageError("Stalled") when it stalls. */
export function guardStalls(store: ObjectStore, o: StallGuardOptions): ObjectStore {
  return new StallGuardedStore(store, o);
}

/** Whether `e` (or the cause of a wrapping error) is a stall. */
export function stallOf(e: unknown): StorageError | undefined {
  for (let x = e, depth = 0; x instanceof Error && depth < 4; x = x.cause, depth++) {
    if (x instanceof StorageError && x.reason === "Stalled") return x;
  }
  return undefined;
}

class StallGuardedStore implements ObjectStore {
  readonly provider: ObjectStore["provider"];
  readonly #clock: Clock;
  /** Calls given up on after a stall, still settling in the backend. */
  readonly #detached = new Set<Promise<unknown>>();

  constructor(private readonly inner: ObjectStore, private readonly o: StallGuardOptions) {
    this.provider = inner.provider;
    this.#clock = o.clock ?? systemClock;
  }

  put(key: string, body: ReadableStream<Uint8Array>, opts: PutOptions = {}) {
    const watch = new StallWatch(this.o.timeoutMs);
    const watched = watchedBody(body, watch, this.#clock);
    // The storage owes the first read (or its first request) from the start.
    watch.owe(this.#clock.now());
    return this.#guard(
      "upload",
      watch,
      (signal) => this.inner.put(key, watched.stream, { ...opts, signal }),
      { signal: opts.signal, onStall: (e) => watched.fail(e), poke: (t) => watched.onOwe(t) },
    );
  }

  async get(key: string, opts: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const stream = await this.#call("download", (signal) => this.inner.get(key, { signal }), opts);
    return watchedDownload(stream, {
      clock: this.#clock,
      timeoutMs: this.o.timeoutMs,
      error: () => this.#stalled("download"),
    });
  }

  head(key: string, opts: CallOptions = {}): Promise<ObjectHead | undefined> {
    return this.#call("head", (signal) => this.inner.head(key, { signal }), opts);
  }

  list(prefix: string, opts: CallOptions = {}): Promise<ObjectInfo[]> {
    return this.#call("list", (signal) => this.inner.list(prefix, { signal }), opts);
  }

  delete(key: string, opts: CallOptions = {}): Promise<void> {
    return this.#call("delete", (signal) => this.inner.delete(key, { signal }), opts);
  }

  probe(opts: CallOptions = {}): Promise<void> {
    return this.#call("probe", (signal) => this.inner.probe({ signal }), opts);
  }

  /** The backend's, or 0 when it has none (it leaves nothing to remove). */
  abortIncompleteUploads(key: string, opts: CallOptions = {}): Promise<number> {
    const inner = this.inner;
    if (!inner.abortIncompleteUploads) {
      return opts.signal?.aborted
        ? Promise.reject(requestAborted(opts.signal))
        : Promise.resolve(0);
    }
    return this.#call(
      "abort of incomplete uploads",
      (signal) => inner.abortIncompleteUploads!(key, { signal }),
      opts,
    );
  }

  async close(): Promise<void> {
    await this.inner.close();
    if (this.#detached.size === 0) return;
    const stop = new AbortController();
    await Promise.race([
      Promise.allSettled([...this.#detached]),
      this.#clock.sleep(this.o.timeoutMs, stop.signal).catch(() => {}),
    ]);
    stop.abort();
  }

  /** A call that owes its answer from its start. */
  #call<T>(what: string, run: (signal: AbortSignal) => Promise<T>, opts: CallOptions) {
    const watch = new StallWatch(this.o.timeoutMs);
    watch.owe(this.#clock.now());
    return this.#guard(what, watch, run, { signal: opts.signal });
  }

  #guard<T>(
    what: string,
    watch: StallWatch,
    run: (signal: AbortSignal) => Promise<T>,
    o: {
      signal: AbortSignal | undefined;
      onStall?: (e: StorageError) => void;
      poke?: (timer: StallTimer) => void;
    },
  ): Promise<T> {
    const ctl = new AbortController();
    const onCallerAbort = () => ctl.abort(o.signal?.reason);
    if (o.signal?.aborted) onCallerAbort();
    else o.signal?.addEventListener("abort", onCallerAbort, { once: true });
    return new Promise<T>((resolve, reject) => {
      const timer = new StallTimer(this.#clock, watch, () => {
        const e = o.signal?.aborted
          ? new StorageError("Aborted", "Storage request aborted", { cause: o.signal.reason })
          : this.#stalled(what);
        ctl.abort(e);
        o.onStall?.(e);
        const left = call.catch(() => {}).finally(() => this.#detached.delete(left));
        this.#detached.add(left);
        reject(e);
      });
      o.poke?.(timer);
      const call = run(ctl.signal);
      call.then(resolve, reject).finally(() => {
        timer.stop();
        o.signal?.removeEventListener("abort", onCallerAbort);
      });
    });
  }

  #stalled(what: string): StorageError {
    this.o.onStall?.(what);
    const span = humanDuration(this.o.timeoutMs);
    const how = what === "upload"
      ? `took no bytes of the upload and did not complete it for ${span}`
      : what === "download"
      ? `sent no bytes of the download for ${span}`
      : `did not answer a ${what} request for ${span}`;
    const hint = this.o.hint ? ` (${this.o.hint})` : "";
    return new StorageError("Stalled", `${this.o.subject} stalled: it ${how}${hint}`);
  }
}

/**
 * `body` as the storage reads it: each read it makes settles the watch (it waits for us), each
 * chunk handed over, and the end, make it owe the next step again. `fail` errors the stream
 * and cancels `body`, so the producer stops.
 */
function watchedBody(body: ReadableStream<Uint8Array>, watch: StallWatch, clock: Clock) {
  const reader = body.getReader();
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  let timer: StallTimer | undefined;
  const owe = () => {
    watch.owe(clock.now());
    timer?.poke();
  };
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    async pull(c) {
      watch.settle();
      const r = await reader.read();
      if (r.done) c.close();
      else c.enqueue(r.value);
      owe();
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return {
    stream,
    onOwe: (t: StallTimer) => void (timer = t),
    fail(e: StorageError) {
      try {
        controller?.error(e);
      } catch { /* closed already */ }
      reader.cancel(e).catch(() => {});
    },
  };
}

/** A download that errors when a chunk asked for does not arrive within the timeout. */
function watchedDownload(
  stream: ReadableStream<Uint8Array>,
  o: { clock: Clock; timeoutMs: number; error: () => StorageError },
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const watch = new StallWatch(o.timeoutMs);
      watch.owe(o.clock.now());
      let stalled: StorageError | undefined;
      const timer = new StallTimer(o.clock, watch, () => {
        stalled = o.error();
        c.error(stalled);
        reader.cancel(stalled).catch(() => {});
      });
      try {
        const r = await reader.read();
        if (stalled) return;
        if (r.done) c.close();
        else c.enqueue(r.value);
      } catch (e) {
        if (!stalled) c.error(e);
      } finally {
        timer.stop();
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
