/**
 * observedGeneration tells the truth through the real program (issue 7 item 12): a Database's
 * spec changes while its reconcile waits on a lock, so that reconcile's status write meets a 409
 * and re-reads the object. The status it writes must still say the generation it reconciled (the
 * status and the Ready condition), not the newer one; the next reconcile then writes the newer.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { DatabaseKind } from "../crds/database.ts";
import { startEnv } from "./helpers/env.ts";
import { holdTransaction } from "./helpers/backup.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Db = {
  metadata: { generation?: number; resourceVersion?: string };
  status?: {
    phase?: string;
    observedGeneration?: number;
    conditions?: { type: string; status: string; observedGeneration?: number }[];
  };
};

function database(ns: string, policy: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: gen-app, namespace: ${ns} }
spec:
  clusterRef: { name: gen-pg }
  databaseName: gen_app
  deletionPolicy: ${policy}
`;
}

Deno.test(
  {
    name: "a status written after a conflicting spec change keeps the reconciled generation",
    ...opts,
  },
  async () => {
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("gen-pg"));
    await env.waitPhase("dbcluster", "gen-pg", "Connected");
    const ns = await env.namespace("gen");
    // The first reconcile's first CREATE ROLE waits on this uncommitted one.
    const blocker = holdTransaction(env, "postgres", 'CREATE ROLE "gen_app_owner";');
    await blocker.written;
    await env.kube.apply(database(ns, "Retain"));
    await waitFor("the reconcile to wait on the lock", async () =>
      Number(
        await env.pg.superSql(
          "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND " +
            "query LIKE 'CREATE ROLE \"gen_app_owner\"%' AND application_name LIKE 'dbtether@%'",
        ),
      ) === 1);

    // Every status the program writes from now on, in order.
    const before = (await env.getJson<Db>("database", "gen-app", ns))!;
    assertEquals(before.status, undefined, "nothing written yet");
    const seen: Db[] = [];
    const stop = new AbortController();
    const watching = (async () => {
      for await (
        const ev of env.client.watch<Db>(DatabaseKind, {
          namespace: ns,
          resourceVersion: before.metadata.resourceVersion!,
          signal: stop.signal,
        })
      ) {
        if (ev.type === "MODIFIED" && ev.object.status) seen.push(ev.object);
      }
    })().catch(() => {});

    await env.kube.apply(database(ns, "Delete"));
    const changed = (await env.getJson<Db>("database", "gen-app", ns))!;
    assertEquals(changed.metadata.generation, 2, "the spec changed while the reconcile waits");
    await blocker.end("ROLLBACK");

    await waitFor(
      "the second reconcile's status",
      () => seen.some((d) => d.status?.observedGeneration === 2 && d.status.phase === "Ready"),
      {
        timeoutMs: budget("ready"),
      },
    );
    stop.abort();
    await watching;
    const first = seen.find((d) => d.status?.phase !== undefined)!;
    assertEquals(first.metadata.generation, 2);
    assertEquals(first.status?.observedGeneration, 1, "the generation the reconcile acted on");
    const ready = first.status?.conditions?.find((c) => c.type === "Ready");
    assertEquals(ready?.observedGeneration, 1, "and so says its Ready condition");
    assert(
      seen.every((d) => (d.status?.observedGeneration ?? 0) <= (d.metadata.generation ?? 0)),
      "never ahead of the spec",
    );
  },
);
