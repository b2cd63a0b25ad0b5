/**
 * A fault-injecting TCP proxy in front of a real HTTP server (MinIO, for issue 13's failing
 * dependencies): it passes connections through unchanged until told to fail them, one of
 * three ways a storage fails in production:
 *
 * - `error`: every request is answered `503 Service Unavailable` with an S3 error body (a
 *   server overloaded or in maintenance), and the connection is closed;
 * - `reset`: every connection is reset once its first bytes arrive (a load balancer or a
 *   crashed backend: the client sees ECONNRESET mid-request);
 * - `down`: the port refuses connections (nothing listens; ECONNREFUSED).
 *
 * In `pass` with the server behind it gone, the proxy still accepts, fails to connect to its
 * upstream and closes the client connection (as a TCP load balancer does); with the server
 * hung (SIGSTOP), the upstream connect succeeds in the kernel and nothing ever answers.
 *
 * Connections open when the mode changes are cut, so a request in flight sees the new fault.
 * The proxy counts the connections each mode received, which is what a test bounds to prove
 * that the client backs off instead of retrying in a loop.
 *
 * ```ts
 * await using proxy = startFaultProxy({ hostname: "127.0.0.1", port: 9000 });
 * proxy.set("error");
 * ```
 */

/** How the proxy treats connections. */
export type FaultMode = "pass" | "error" | "reset" | "down";

export interface FaultProxy extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`; the port stays the same across modes. */
  readonly endpoint: string;
  readonly port: number;
  /** Switches the mode; open connections are cut. */
  set(mode: FaultMode): Promise<void>;
  /** Connections received in each mode so far (`down`: none can be; always 0). */
  connections(): Record<FaultMode, number>;
  close(): Promise<void>;
}

const UNAVAILABLE = (() => {
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>' +
    "<Message>injected by the test proxy: service unavailable</Message></Error>";
  return new TextEncoder().encode(
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n" +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
})();

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch { /* closed already */ }
}

async function writeAll(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await to.write(bytes.subarray(off));
}

async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      await writeAll(to, buf.subarray(0, n));
    }
    to.closeWrite();
  } catch { /* one side closed */ }
}

/** Reads until the end of the request head (or the peer stops); returns false on EOF first. */
async function readHead(conn: Deno.Conn): Promise<boolean> {
  const buf = new Uint8Array(16 * 1024);
  let seen = "";
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return false;
    seen = (seen + new TextDecoder().decode(buf.subarray(0, n))).slice(-4096);
    if (seen.includes("\r\n\r\n")) return true;
  }
}

/** Reads and discards until EOF or `ms` passed. */
async function drain(conn: Deno.Conn, ms: number): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)));
  try {
    while ((await Promise.race([conn.read(buf), timeout])) !== null) { /* discard */ }
  } finally {
    clearTimeout(timer);
  }
}

/** Starts a {@link FaultProxy} on 127.0.0.1 (a free port) in front of `target`, passing. */
export function startFaultProxy(target: { hostname: string; port: number }): FaultProxy {
  let mode: FaultMode = "pass";
  let listener: Deno.Listener | undefined;
  let port = 0;
  const open = new Set<Deno.Conn>();
  const counts: Record<FaultMode, number> = { pass: 0, error: 0, reset: 0, down: 0 };
  const tasks = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    tasks.add(p);
    p.finally(() => tasks.delete(p));
  };
  const hold = (c: Deno.Conn) => (open.add(c), c);
  const drop = (...cs: (Deno.Conn | undefined)[]) => {
    for (const c of cs) {
      if (!c) continue;
      open.delete(c);
      closeQuietly(c);
    }
  };

  const serve = async (client: Deno.Conn, as: FaultMode) => {
    try {
      if (as === "reset") {
        // Closing a socket with unread bytes makes the kernel send RST, not FIN.
        await client.read(new Uint8Array(1));
        return;
      }
      if (as === "error") {
        if (!(await readHead(client))) return;
        await writeAll(client, UNAVAILABLE);
        // Take what the client still sends (a body) for a moment: closing with unread bytes
        // would reset the connection before the client reads the answer.
        client.closeWrite();
        await drain(client, 2000);
        return;
      }
      const server = hold(await Deno.connect(target));
      try {
        await Promise.all([pump(client, server), pump(server, client)]);
      } finally {
        drop(server);
      }
    } catch {
      /* the peer went away */
    } finally {
      drop(client);
    }
  };

  const listen = () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port });
    port = (l.addr as Deno.NetAddr).port;
    listener = l;
    track((async () => {
      try {
        for await (const c of l) {
          counts[mode]++;
          track(serve(hold(c), mode));
        }
      } catch { /* closed */ }
    })());
  };
  const unlisten = () => {
    if (listener) closeQuietly(listener);
    listener = undefined;
  };
  listen();

  const set = async (next: FaultMode) => {
    if (next === mode) return;
    mode = next;
    drop(...open);
    if (next === "down") unlisten();
    else if (!listener) listen();
    await new Promise((r) => setTimeout(r, 0));
  };
  const close = async () => {
    unlisten();
    drop(...open);
    await Promise.allSettled([...tasks]);
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    set,
    connections: () => ({ ...counts }),
    close,
    [Symbol.asyncDispose]: close,
  };
}
