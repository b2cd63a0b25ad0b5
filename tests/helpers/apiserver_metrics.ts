/**
 * The test apiserver's own request counter (`apiserver_request_total` from its /metrics), for
 * tests and benchmarks that count what the operator asked of the apiserver. The apiserver has no
 * client label: callers count in a window where only the operator talks to it, or subtract their
 * own requests.
 */
import type { TestEnv } from "./env.ts";

export interface Counts {
  [key: string]: number;
}

/** apiserver_request_total summed by `VERB resource[/subresource]`. */
export async function apiserverRequests(env: TestEnv): Promise<Counts> {
  const text = (await env.kube.kubectl(["get", "--raw", "/metrics"], { check: true })).stdout;
  const out: Counts = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const labels = Object.fromEntries(
      [...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (!labels.resource) continue;
    const key = `${labels.verb} ${labels.resource}${
      labels.subresource ? `/${labels.subresource}` : ""
    }`;
    out[key] = (out[key] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return out;
}
