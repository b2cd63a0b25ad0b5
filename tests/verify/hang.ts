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
    try {
      listener.close();
    } catch { /* closed already */ }
    for (const c of held.splice(0)) {
      try {
        c.close();
      } catch { /* closed by the peer */ }
    }
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
