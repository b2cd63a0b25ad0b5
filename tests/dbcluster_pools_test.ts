/**
 * Two DBClusters on one server (same host, port and admin user) with different pool bounds
 * (issue 7, item 14): each keeps its own pool, so a burst of reconciles on both never rebuilds
 * either (the other's settings used to close it on every resolve), and each bound holds in
 * pg_stat_activity (sessions are named `dbtether@<replica>/DBCluster/<name>`).
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const DATABASES = { "pool-a": ["pa1"], "pool-b": ["pb1", "pb2"] } as const;
const BOUNDS = { "pool-a": 1, "pool-b": 6 } as const;

function database(ns: string, name: string, cluster: string, revoke: boolean): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterRef: { name: ${cluster} }
  revokePublicConnect: ${revoke}
`;
}

function manifests(ns: string, revoke: boolean): string {
  return Object.entries(DATABASES).flatMap(([cluster, dbs]) =>
    dbs.map((d) => database(ns, d, cluster, revoke))
  ).join("---\n");
}

async function converged(env: TestEnv, ns: string): Promise<boolean> {
  const r = await env.kube.kubectl(["get", "databases", "-n", ns, "-o", "json"]);
  if (r.code !== 0) return false;
  const items = JSON.parse(r.stdout).items as {
    metadata: { generation: number };
    status?: { phase?: string; observedGeneration?: number };
  }[];
  return items.length === 3 &&
    items.every((d) =>
      d.status?.phase === "Ready" && d.status.observedGeneration === d.metadata.generation
    );
}

/** "pool slot opened" debug lines of the program, by database. */
function slotsOpened(logs: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of logs.split("\n")) {
    if (!line.includes('"pool slot opened"')) continue;
    const db = (JSON.parse(line) as { database: string }).database;
    out.set(db, (out.get(db) ?? 0) + 1);
  }
  return out;
}

Deno.test(
  { name: "two DBClusters on one server keep their own pools and bounds", ...opts },
  async () => {
    await using env = await startEnv({ pg: true, program: true });
    for (const [name, max] of Object.entries(BOUNDS)) {
      await env.kube.apply(env.clusterManifest(name, { extraSpec: `  maxConnections: ${max}` }));
    }
    const ns = await env.namespace("pools");
    await env.kube.apply(manifests(ns, true));
    await waitFor("the Databases on both DBClusters Ready", () => converged(env, ns), {
      timeoutMs: budget("ready"),
      intervalMs: 250,
    });

    // Sample each DBCluster's sessions while a burst of reconciles runs on both.
    const peak = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const rows = await env.pg.superSql(
          "SELECT split_part(application_name, '/DBCluster/', 2), count(*) " +
            "FROM pg_stat_activity WHERE application_name LIKE 'dbtether@%/DBCluster/%' GROUP BY 1",
        );
        for (const row of rows.trim().split("\n").filter(Boolean)) {
          const [cluster, n] = row.split("|");
          peak.set(cluster!, Math.max(peak.get(cluster!) ?? 0, Number(n)));
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      for (let round = 0; round < 6; round++) {
        await env.kube.apply(manifests(ns, round % 2 === 0 ? false : true));
        await waitFor(`round ${round} of the burst to converge`, () => converged(env, ns), {
          timeoutMs: budget("ready"),
          intervalMs: 100,
        });
      }
    } finally {
      sampling = false;
      await sampler;
    }

    const logs = env.program!.logs();
    const opened = slotsOpened(logs);
    // pool-b has room for every database it serves: each of its databases got one slot, once.
    for (const db of DATABASES["pool-b"]) {
      assertEquals(opened.get(db), 1, `slots opened for ${db}: ${opened.get(db)}`);
    }
    assert(!logs.includes('"pool rebuilt: its settings changed"'), "no pool was rebuilt");
    assert((peak.get("pool-a") ?? 0) >= 1, "pool-a's sessions were seen");
    assert(peak.get("pool-a")! <= BOUNDS["pool-a"], `pool-a peaked at ${peak.get("pool-a")}`);
    assert((peak.get("pool-b") ?? 0) <= BOUNDS["pool-b"], `pool-b peaked at ${peak.get("pool-b")}`);
    const failed = logs.split("\n").filter((l) => l.includes("Reconcile failed"));
    assertEquals(failed, [], "no reconcile failed (a closed pool used to fail them)");
  },
);
