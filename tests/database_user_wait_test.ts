/**
 * A DatabaseUser applied before its Database (as GitOps tools do, in any order) against a real
 * apiserver and PostgreSQL: it says what it waits for, and the Database's own events bring it to
 * Ready, not a retry timer.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { type Obj, readyReason, runsAs, secretData } from "./helpers/fixtures.ts";
import { freePort } from "./helpers/free_port.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** `--backoff-max` of the test program (tests/helpers/env.ts, testRunArgs). */
const TEST_BACKOFF_CAP_MS = 5_000;

/** The values of `metric` on /metrics whose labels include every `labels` pair, summed. */
async function metricSum(port: number, metric: string, labels: string[]): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split("\n")
    .filter((l) => l.startsWith(`${metric}{`) && labels.every((p) => l.includes(p)))
    .reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
}

Deno.test(
  { name: "a DatabaseUser before its Database waits for it, then is Ready", ...opts },
  async () => {
    const port = freePort();
    await using env = await startEnv({
      pg: true,
      program: true,
      programArgs: ["--metrics-bind-address", `127.0.0.1:${port}`],
    });
    await env.kube.apply(env.clusterManifest("main"));
    const ns = await env.namespace("wait");
    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: early, namespace: ${ns} }
spec:
  databaseRef: { name: later }
  privileges: readwrite
`);
    await waitFor(
      "DatabaseNotFound",
      async () =>
        readyReason(await env.getJson<Obj>("databaseuser", "early", ns)) === "DatabaseNotFound",
      { timeoutMs: budget("react") },
    );
    // The test program's retry backoff is 200 ms doubling to a 5 s cap (testRunArgs): a retry
    // timer would have run at least twice in twice the cap. A slower machine only makes a retry
    // more likely to fall inside the window, never a correct program fail.
    const reconciles = () =>
      metricSum(port, "dbtether_reconcile_total", ['controller="databaseuser"']);
    const first = await reconciles();
    await new Promise((r) => setTimeout(r, 2 * TEST_BACKOFF_CAP_MS));
    assertEquals(await reconciles(), first, "no reconcile of the waiting user without an event");
    assertEquals(
      await metricSum(port, "dbtether_reconcile_errors_total", [
        'controller="databaseuser"',
        'reason="DatabaseNotFound"',
      ]),
      0,
    );

    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: later, namespace: ${ns} }
spec:
  clusterRef: { name: main }
  databaseName: wait_later
  deletionPolicy: Delete
`);
    await env.waitPhase("databaseuser", "early", "Ready", {
      namespace: ns,
      timeoutMs: budget("ready"),
    });
    const c = (await secretData(env, { namespace: ns, name: "early-credentials" }))!;
    assert(
      await runsAs(env.pg, { user: c.username!, password: c.password!, database: "wait_later" }),
    );
    // Passes since the wait began (issue 12): at most one for the Database's create (still not
    // Ready), then the three credentials passes (record pending, apply, converge). The Database's
    // finalizer and phase, and the echoes of the user's own Secret writes, start none: each used
    // to add a pass. Waiting for the last echoes first: a pass they start shows up here.
    await env.waitPhase("database", "later", "Ready", {
      namespace: ns,
      timeoutMs: budget("ready"),
    });
    await new Promise((r) => setTimeout(r, 2 * TEST_BACKOFF_CAP_MS));
    const passes = await reconciles() - first;
    assert(passes >= 3 && passes <= 4, `${passes} DatabaseUser passes after the wait (3 or 4)`);
  },
);
