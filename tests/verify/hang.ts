/**
 * A loopback listener that accepts every TCP connection and never answers, never closes: the
 * worst kind of broken dependency (a firewall that drops replies, a server stuck in a full
 * accept queue). Connections stay open until `close()`.
 */
export interface HangingListener extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  /** How many connections were accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** Closes the listener and every connection it accepted (those the peer closed included). */
function closeAll(listener: Deno.Listener, conns: Deno.Conn[]): void {
  for (const c of [listener, ...conns.splice(0)]) {
    try {
      c.close();
    } catch { /* closed already */ }
  }
}

/** Starts a {@link HangingListener} on 127.0.0.1 and a free port. */
export function startHangingListener(): HangingListener {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  let count = 0;
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        count++;
        held.push(conn);
      }
    } catch { /* closed */ }
  })();
  const close = async () => {
    closeAll(listener, held);
    await loop;
  };
  return {
    host: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
    accepted: () => count,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A TCP proxy to a real server that, once `hang()` is called, stops answering. */
export interface HangingProxy extends AsyncDisposable {
  readonly endpoint: string;
  /** From now on nothing passes either way, new connections included; nothing is closed. */
  hang(): void;
  /**
   * From now on a connection that sends more than `bytes` without an answer in between (an
   * upload's body, not a HEAD, GET or LIST) stops there: the rest of that request is
   * swallowed and no answer comes, while small requests keep passing. A storage that stops
   * answering mid-upload.
   */
  hangUploads(bytes?: number): void;
  close(): Promise<void>;
}

/** Starts a {@link HangingProxy} on 127.0.0.1 in front of `target` (host:port). */
export function startHangingProxy(target: { hostname: string; port: number }): HangingProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  let hung = false;
  let uploadLimit: number | undefined;
  /** Client bytes since the server last answered, per connection pair. */
  type Pair = { unanswered: number };
  const copy = async (from: Deno.Conn, to: Deno.Conn, o: { pair: Pair; upstream: boolean }) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (hung) return; // swallowed: the peer waits for an answer that never comes
        if (o.upstream) {
          o.pair.unanswered += n;
          if (uploadLimit !== undefined && o.pair.unanswered > uploadLimit) return;
        } else {
          o.pair.unanswered = 0;
        }
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
      to.closeWrite();
    } catch { /* one side closed */ }
  };
  const pumps: Promise<unknown>[] = [];
  const loop = (async () => {
    try {
      for await (const client of listener) {
        conns.push(client);
        if (hung) continue;
        const server = await Deno.connect(target).catch(() => undefined);
        if (!server) {
          client.close();
          continue;
        }
        conns.push(server);
        const pair = { unanswered: 0 };
        pumps.push(
          copy(client, server, { pair, upstream: true }),
          copy(server, client, { pair, upstream: false }),
        );
      }
    } catch { /* closed */ }
  })();
  const close = async () => {
    closeAll(listener, conns);
    await loop;
    await Promise.allSettled(pumps);
  };
  return {
    endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    hang: () => (hung = true),
    hangUploads: (bytes = 8 * 1024) => (uploadLimit = bytes),
    close,
    [Symbol.asyncDispose]: close,
  };
}
