/**
 * Telling "the server does not speak TLS" from a network failure. postgres.js answers a server
 * that declines TLS (it replies `N` to the SSLRequest) by starting the handshake anyway, and the
 * server hangs up: the error then reads "Client network socket disconnected before secure TLS
 * connection was established", which names neither cause nor fix. We ask the server ourselves.
 */
import { RetryableError } from "../../lib/errors.ts";

/** The SSLRequest packet: length 8, code 80877103. */
const SSL_REQUEST = new Uint8Array([0, 0, 0, 8, 4, 210, 22, 47]);

/** Whether an error of a TLS connection attempt may mean the server declined TLS. */
export function looksLikeTlsRefusal(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /before secure TLS connection was established|ECONNRESET/i.test(msg);
}

/** Asks the server whether it accepts TLS: true for `S`, false for `N`, undefined otherwise. */
export async function serverAcceptsTls(
  host: string,
  port: number,
  timeoutMs = 3000,
): Promise<boolean | undefined> {
  let conn: Deno.TcpConn | undefined;
  const timer = setTimeout(() => conn?.close(), timeoutMs);
  try {
    conn = await Deno.connect({ hostname: host, port });
    await conn.write(SSL_REQUEST);
    const buf = new Uint8Array(1);
    const n = await conn.read(buf);
    if (n !== 1) return undefined;
    return buf[0] === 0x53 ? true : buf[0] === 0x4e ? false : undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed by the timer */ }
  }
}

/** The actionable error for a server that declined TLS under `sslMode`. */
export function tlsRefusedError(endpoint: string, sslMode: string, cause: unknown): RetryableError {
  return new RetryableError(
    "ClusterUnreachable",
    `Cannot connect to ${endpoint} with sslMode ${sslMode}: the server does not accept TLS ` +
      "connections. Turn on ssl on the server, or, if it is meant to run without TLS (a local " +
      "server), set sslMode: disable on the DBCluster",
    { cause },
  );
}
