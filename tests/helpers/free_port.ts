/**
 * A free TCP port on the loopback interface: bind port 0, read the port the kernel chose, release it.
 * Another process may take it before the caller binds; callers that can retry on "address in use"
 * should.
 */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0, transport: "tcp" });
  try {
    return (listener.addr as Deno.NetAddr).port;
  } finally {
    listener.close();
  }
}
