/**
 * The DBCluster's status follows its server between health checks: when a Database's connect
 * finds the server gone, the DBCluster says ClusterUnreachable at once (not at its next check,
 * an hour away here), and Connected again once the server is back.
 */
import { assert } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { readyOf, waitReason } from "./helpers/fixtures.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Conditioned = {
  status?: { phase?: string; conditions?: { type: string; reason: string; message: string }[] };
};

function database(ns: string, name: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterRef: { name: main }
`;
}

Deno.test({
  name: "DBCluster status: unreachable and back without waiting for the health check",
  ...opts,
}, async () => {
  await using env = await startEnv({ pg: true, program: true });
  // An hour between health checks: only the other controllers' connects can change the status.
  await env.kube.apply(env.clusterManifest("main", { extraSpec: "  healthCheckInterval: 1h\n" }));
  await env.waitPhase("dbcluster", "main", "Connected");
  const ns = await env.namespace("reach");
  await env.kube.apply(database(ns, "first"));
  await env.waitPhase("database", "first", "Ready", { namespace: ns });

  await env.pg.stop();
  // Something to do while it is down: a Database's reconcile connects and finds it gone.
  await env.kube.apply(database(ns, "second"));
  await waitReason(env, {
    kind: "database",
    namespace: ns,
    name: "second",
    reason: "ClusterUnreachable",
  });
  const down = await waitFor("the DBCluster to say ClusterUnreachable", async () => {
    const c = await env.getJson<Conditioned>("dbcluster", "main");
    return readyOf(c)?.reason === "ClusterUnreachable" ? c : undefined;
  }, { timeoutMs: budget("react") });
  assert(down.status?.phase !== "Connected", JSON.stringify(down.status));
  assert(/unreachable/.test(readyOf(down)?.message ?? ""), readyOf(down)?.message);

  await env.pg.start();
  await env.waitPhase("database", "second", "Ready", {
    namespace: ns,
    timeoutMs: budget("recovery"),
  });
  await env.waitPhase("dbcluster", "main", "Connected", { timeoutMs: budget("recovery") });
});
