/**
 * The probe and metrics endpoints: /healthz (the process is alive), /readyz (caches synced
 * and, with leader election, leading or standing by healthy) and /metrics (Prometheus).
 */
import type { Logger } from "../../lib/log.ts";
import type { Metrics } from "./metrics.ts";

export interface ProbeState {
  ready(): { ok: boolean; detail: string };
}

/** Parses ":8080", "127.0.0.1:8080" or "0" (disabled) into listen options. */
export function parseAddress(addr: string): { hostname: string; port: number } | undefined {
  if (addr === "0" || addr === "") return undefined;
  const i = addr.lastIndexOf(":");
  if (i < 0) throw new Error(`Invalid listen address "${addr}": expected [host]:port`);
  const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`Invalid listen address "${addr}": the port must be 0-65535`);
  }
  return { hostname: host || "0.0.0.0", port };
}

/**
 * Why an address cannot be listened on, in words that name the flag and the fix:
 * `Cannot listen on 127.0.0.1:8080 for --metrics-bind-address: address already in use (pass
 * another address, or 0 to disable)`.
 */
export function listenError(e: unknown, o: { address: string; flags: string[] }): Error {
  const what = `Cannot listen on ${o.address} for ${o.flags.join(" and ")}`;
  const fix = "pass another address, or 0 to disable";
  if (e instanceof Deno.errors.AddrInUse) {
    return new Error(`${what}: address already in use (${fix})`);
  }
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    return new Error(`${what}: permission denied (ports below 1024 need privileges; ${fix})`);
  }
  if (e instanceof Deno.errors.AddrNotAvailable) {
    return new Error(`${what}: no such local address (${fix})`);
  }
  return new Error(`${what}: ${e instanceof Error ? e.message : String(e)} (${fix})`);
}

/**
 * Serves the endpoints on each distinct address; returns servers to shut down. Throws
 * {@link listenError}'s message when an address cannot be bound.
 */
export function serveProbes(opts: {
  metricsAddress: string;
  healthAddress: string;
  metrics: Metrics;
  probes: ProbeState;
  logger: Logger;
}): Deno.HttpServer[] {
  const handler = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (path === "/healthz" || path === "/livez") return new Response("ok\n");
    if (path === "/readyz") {
      const r = opts.probes.ready();
      return new Response(r.detail + "\n", { status: r.ok ? 200 : 503 });
    }
    if (path === "/metrics") {
      return new Response(await opts.metrics.text(), {
        headers: { "content-type": opts.metrics.registry.contentType },
      });
    }
    return new Response("not found\n", { status: 404 });
  };
  const servers: Deno.HttpServer[] = [];
  const flags = new Map<string, string[]>();
  for (
    const [addr, flag] of [
      [opts.metricsAddress, "--metrics-bind-address"],
      [opts.healthAddress, "--health-probe-bind-address"],
    ] as const
  ) {
    if (parseAddress(addr)) flags.set(addr, [...(flags.get(addr) ?? []), flag]);
  }
  for (const [addr, forFlags] of flags) {
    const listen = parseAddress(addr)!;
    let server: Deno.HttpServer;
    try {
      server = Deno.serve({
        ...listen,
        onListen: ({ hostname, port }) =>
          opts.logger.info("Serving probes and metrics", { address: `${hostname}:${port}` }),
        onError: (e) => {
          opts.logger.error("HTTP handler failed", { error: e });
          return new Response("internal error\n", { status: 500 });
        },
      }, handler);
    } catch (e) {
      for (const started of servers) void started.shutdown();
      throw listenError(e, { address: addr, flags: forFlags });
    }
    servers.push(server);
  }
  return servers;
}
