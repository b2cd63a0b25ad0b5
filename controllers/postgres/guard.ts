/**
 * The statement guard of one pool run: every statement `fn` sends through its `sql` first
 * passes the fence (the leader lease is still valid on this replica's clocks), and every
 * statement still running when the fence closes or the run's signal aborts is cancelled on the
 * server (postgres.js sends a CancelRequest: closing the socket would not stop the server from
 * finishing the statement). A transaction passes the fence again right before its COMMIT, so a
 * replica frozen mid-transaction rolls back instead of committing after its successor started.
 */
import type { Fence } from "../../lib/fence.ts";
import type { Sql } from "./slot.ts";

interface Cancellable {
  cancel(): unknown;
}

function isQuery(v: unknown): v is Promise<unknown> & Cancellable {
  return v instanceof Promise && typeof (v as Partial<Cancellable>).cancel === "function";
}

/** Guards the statements of one run; `end` it when the run is over. */
export class StatementGuard {
  readonly #fence: Fence;
  readonly #signal: AbortSignal | undefined;
  readonly #queries = new Set<Cancellable>();
  readonly #onAbort = () => this.cancelAll();
  #connected: () => boolean = () => true;

  constructor(fence: Fence, signal?: AbortSignal) {
    this.#fence = fence;
    this.#signal = signal;
    fence.signal.addEventListener("abort", this.#onAbort, { once: true });
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Throws unless a statement may be sent now. */
  admit(): void {
    this.#fence.check();
    this.#signal?.throwIfAborted();
    // postgres.js would reconnect for the statement, and send it only after the connect: a
    // statement must go out on the connection that was open when it passed the fence.
    if (!this.#connected()) {
      throw Object.assign(
        new Error("Cannot send the statement: the connection closed during the run"),
        { code: "CONNECTION_CLOSED" },
      );
    }
  }

  /**
   * `sql`, with every statement admitted first and tracked while it may run. `connected` says
   * whether the connection the run started on is still open.
   */
  wrap(sql: Sql, connected?: () => boolean): Sql {
    if (connected) this.#connected = connected;
    const send = (make: () => unknown) => {
      this.admit();
      const q = make();
      if (isQuery(q)) this.#queries.add(q);
      return q;
    };
    const transaction = (begin: (...a: unknown[]) => unknown) => (...args: unknown[]) => {
      this.admit();
      const fn = args.pop() as (tx: Sql) => unknown;
      return begin(...args, async (tx: Sql) => {
        const result = await fn(this.wrap(tx, connected));
        // Throwing here makes postgres.js roll back instead of committing.
        this.admit();
        return result;
      });
    };
    return new Proxy(sql, {
      apply: (target, self, args) => send(() => Reflect.apply(target, self, args)),
      get: (target, prop) => {
        const v: unknown = Reflect.get(target, prop);
        if (typeof v !== "function") return v;
        const bound = (v as (...a: unknown[]) => unknown).bind(target);
        if (prop === "unsafe" || prop === "file") {
          return (...args: unknown[]) => send(() => bound(...args));
        }
        if (prop === "begin" || prop === "savepoint") return transaction(bound);
        return bound;
      },
    });
  }

  /** Cancels every statement of this run that may still be queued or running. */
  cancelAll(): void {
    for (const q of this.#queries) {
      // Cancelling a statement that already finished sends nothing.
      Promise.resolve(q.cancel()).catch(() => {});
    }
  }

  /** The error a failed run reports: why it was stopped, if it was, else its own. */
  cause(e: unknown): unknown {
    if (this.#fence.signal.aborted) return this.#fence.signal.reason;
    if (this.#signal?.aborted) return this.#signal.reason;
    return e;
  }

  end(): void {
    this.#fence.signal.removeEventListener("abort", this.#onAbort);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#queries.clear();
  }
}
