/**
 * The probe and metrics endpoints: /healthz (the process is alive), /readyz (caches synced
 * and, with leader election, leading or standing by healthy) and /metrics (Prometheus).
 */
import type { Logger } from "./log.ts";
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

/** Serves the endpoints on each distinct address; returns servers to shut down. */
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
  const seen = new Set<string>();
  for (const addr of [opts.metricsAddress, opts.healthAddress]) {
    const listen = parseAddress(addr);
    if (!listen || seen.has(addr)) continue;
    seen.add(addr);
    servers.push(Deno.serve({
      ...listen,
      onListen: ({ hostname, port }) =>
        opts.logger.info("Serving probes and metrics", { address: `${hostname}:${port}` }),
      onError: (e) => {
        opts.logger.error("HTTP handler failed", { error: e });
        return new Response("internal error\n", { status: 500 });
      },
    }, handler));
  }
  return servers;
}
