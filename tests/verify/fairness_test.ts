/**
 * Fairness (issue 13): a DBCluster whose endpoint accepts TCP and never answers must not slow
 * down the healthy DBCluster beside it. The same run times N Database+DatabaseUser pairs on the
 * healthy server twice, alone and with the broken DBCluster's own pairs in the same queues; the
 * ratio of the two is the figure, and the broken DBCluster reports `ClusterUnreachable`.
 *
 * `DBTETHER_VERIFY_PAIRS` (default 20; `make verify-long`: 200) sets N.
 */
import { assert } from "../helpers/assert.ts";
import { startEnv, type TestEnv } from "../helpers/env.ts";
import { type Cond, waitReason } from "../helpers/fixtures.ts";
import { startHangingListener } from "./hang.ts";
import { figure, pairs, param, waitPairsReady } from "./workload.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/**
 * The slowdown the healthy pairs may show with the broken DBCluster present. Not a timing
 * budget: the two runs share the machine and its load, so a fair controller stays near 1,
 * and head-of-line blocking (workers waiting out connect timeouts) shows as several times.
 */
const MAX_RATIO = 2;

/** The healthy DBCluster's pool bound (the CRD default). */
const HEALTHY_BOUND = 5;

function brokenCluster(port: number): string {
  return `apiVersion: v1
kind: Secret
metadata: { name: broken-admin, namespace: default }
type: Opaque
stringData: { username: nobody, password: "never-used-password" }
---
apiVersion: dbtether.io/v1alpha1
kind: DBCluster
metadata: { name: broken }
spec:
  endpoint: 127.0.0.1
  port: ${port}
  credentialsSecretRef: { name: broken-admin, namespace: default }
`;
}

/** Most sessions of the healthy DBCluster's pool seen at once while `run` runs. */
async function peakSessions(env: TestEnv, run: () => Promise<number>) {
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const n = Number(
        await env.pg.superSql(
          "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%/DBCluster/healthy'",
        ),
      );
      peak = Math.max(peak, n);
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  try {
    return { seconds: await run(), peak };
  } finally {
    sampling = false;
    await sampler;
  }
}

Deno.test(
  { name: "a DBCluster that never answers does not slow the healthy one down", ...opts },
  async () => {
    const n = param("DBTETHER_VERIFY_PAIRS", 20);
    const broken = Math.max(4, Math.round(n / 4));
    await using hang = startHangingListener();
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("healthy"));
    // A warm-up, so neither timed run pays for the first connections and informer syncs.
    const warm = await env.namespace("warm");
    await env.kube.apply(pairs(warm, { prefix: "warm", cluster: "healthy", n: 2 }));
    await waitPairsReady(env, warm, { n: 2, since: Date.now() });

    const alone = await env.namespace("alone");
    let since = Date.now();
    await env.kube.apply(pairs(alone, { prefix: "alone", cluster: "healthy", n }));
    const t1 = await peakSessions(env, () => waitPairsReady(env, alone, { n, since }));

    const bad = await env.namespace("broken");
    const beside = await env.namespace("beside");
    since = Date.now();
    await env.kube.apply(brokenCluster(hang.port));
    await env.kube.apply(pairs(bad, { prefix: "bad", cluster: "broken", n: broken }));
    const beforeHealthy = Date.now();
    await env.kube.apply(pairs(beside, { prefix: "beside", cluster: "healthy", n }));
    const reported = waitReason(env, {
      kind: "dbcluster",
      namespace: "",
      name: "broken",
      reason: "ClusterUnreachable",
    }).then(() => (Date.now() - since) / 1000);
    const t2 = await peakSessions(
      env,
      () => waitPairsReady(env, beside, { n, since: beforeHealthy }),
    );
    const unreachableAfter = await reported;

    const ratio = t2.seconds / t1.seconds;
    figure(`fairness: ${n} pairs Ready alone`, `${t1.seconds.toFixed(1)} s`, "bulk");
    figure(
      `fairness: ${n} pairs Ready beside a hanging DBCluster (${broken} pairs)`,
      `${t2.seconds.toFixed(1)} s`,
      "bulk",
    );
    figure("fairness: ratio (beside / alone)", ratio.toFixed(2));
    figure("fairness: broken DBCluster ClusterUnreachable after", `${unreachableAfter} s`, "ready");
    figure("fairness: healthy pool sessions at most", Math.max(t1.peak, t2.peak));
    figure("fairness: connections the hanging listener accepted", hang.accepted());
    assert(hang.accepted() > 0, "the broken DBCluster was never tried");
    assert(ratio <= MAX_RATIO, `the healthy pairs were ${ratio.toFixed(2)} times slower`);
    assert(Math.max(t1.peak, t2.peak) <= HEALTHY_BOUND, "the healthy pool exceeded its bound");
    // The broken DBCluster's own resources say why they wait, and none of them is Ready.
    const db = await env.getJson<{ status?: { conditions?: Cond[] } }>(
      "database",
      "bad-000",
      bad,
    );
    const ready = db?.status?.conditions?.find((c) => c.type === "Ready");
    figure("fairness: a broken Database's reason", `${ready?.reason}: ${ready?.message}`);
    assert(ready?.status !== "True", "a Database on the hanging server is Ready");
  },
);
