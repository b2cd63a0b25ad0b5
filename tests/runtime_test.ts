/**
 * The controller runtime against a real kube-apiserver + etcd: cache sync, watch resumption
 * after an apiserver restart, 410 re-list, status conflict retry, backoff, terminal errors,
 * Events, and leader election between two real processes with a SIGKILL failover.
 */
import { budget } from "./helpers/timeouts.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import type { KubeObject } from "../crds/kind.ts";
import { systemClock } from "../lib/clock.ts";
import { type Condition, setCondition } from "../controllers/runtime/conditions.ts";
import { Controller, done } from "../controllers/runtime/controller.ts";
import { TerminalError } from "../lib/errors.ts";
import { KubeEventRecorder } from "../controllers/runtime/events.ts";
import { Informer } from "../controllers/runtime/informer.ts";
import {
  KubeClient,
  LeaseResource,
  loadKubeConfig,
  type Resource,
} from "../controllers/runtime/kube.ts";
import { LeaderElector } from "../controllers/runtime/leader.ts";
import { kubeMicroTime } from "../lib/time.ts";
import { createLogger, nullLogger } from "../lib/log.ts";
import { updateStatus } from "../controllers/runtime/objects.ts";
import { startKube } from "./helpers/kube.ts";
import { startProgram } from "./helpers/program.ts";
import { waitFor } from "./helpers/wait.ts";

const WIDGET_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.dbtether.io
spec:
  group: test.dbtether.io
  names: { kind: Widget, plural: widgets, singular: widget, listKind: WidgetList }
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: { status: {} }
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: { type: object, x-kubernetes-preserve-unknown-fields: true }
          status: { type: object, x-kubernetes-preserve-unknown-fields: true }
`;
const Widget: Resource = {
  group: "test.dbtether.io",
  version: "v1",
  plural: "widgets",
  namespaced: true,
  kind: "Widget",
};
type W = KubeObject<{ size?: number }, { seen?: number; note?: string }>;
type WG = KubeObject<{ size?: number }, { observedGeneration?: number; conditions?: Condition[] }>;

function widget(ns: string, name: string, size = 1): W {
  return {
    apiVersion: "test.dbtether.io/v1",
    kind: "Widget",
    metadata: { name, namespace: ns },
    spec: { size },
  };
}

function clientFor(path: string): KubeClient {
  return new KubeClient(loadKubeConfig({ path, env: {}, exists: () => true }).kc);
}

/** The Widget CRD, established, and the namespaces. */
async function widgetsIn(kube: Awaited<ReturnType<typeof startKube>>, namespaces: string[]) {
  await kube.apply(WIDGET_CRD);
  await kube.kubectl(["wait", "--for=condition=Established", "crd/widgets.test.dbtether.io"], {
    check: true,
  });
  for (const ns of namespaces) await kube.kubectl(["create", "namespace", ns], { check: true });
}

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({ name: "controller runtime against a real apiserver", ...opts }, async (t) => {
  await using kube = await startKube({ crds: false });
  await kube.apply(WIDGET_CRD);
  await kube.kubectl(["wait", "--for=condition=Established", "crd/widgets.test.dbtether.io"], {
    check: true,
  });
  await kube.kubectl(["create", "namespace", "rt"], { check: true });
  const client = clientFor(kube.kubeconfigPath);
  for (const n of ["a", "b", "c"]) {
    await client.create(Widget, { namespace: "rt", body: widget("rt", n) });
  }

  const stop = new AbortController();
  const informer = new Informer<W>({
    client,
    resource: Widget,
    clock: systemClock,
    logger: nullLogger,
    namespace: "rt",
    minBackoffMs: 200,
    maxBackoffMs: 1000,
  });
  const running = informer.run(stop.signal);

  await t.step("the cache syncs with every existing object", async () => {
    await informer.waitForSync();
    assertEquals(informer.list().map((w) => w.metadata.name).sort(), ["a", "b", "c"]);
  });

  await t.step("the watch resumes after the apiserver restarts", async () => {
    await kube.stopApiserver();
    await new Promise((r) => setTimeout(r, 1500));
    await kube.startApiserver();
    await client.create(Widget, { namespace: "rt", body: widget("rt", "after-restart") });
    await waitFor("the new object in the cache", () => informer.get("rt/after-restart"), {
      timeoutMs: budget("recovery"),
    });
  });

  await t.step("status writes re-read and retry on 409 conflicts", async () => {
    await client.patch(Widget, {
      namespace: "rt",
      name: "a",
      body: { status: { note: "by another writer" } },
      subresource: "status",
    }); // makes `stale` out of date
    const stale = await client.get<W>(Widget, { namespace: "rt", name: "a" });
    await client.patch(Widget, {
      namespace: "rt",
      name: "a",
      body: { status: { note: "newer note" } },
      subresource: "status",
    });
    let calls = 0;
    const wrote = await updateStatus(client, {
      resource: Widget,
      object: stale,
      compute: (latest) => {
        calls++;
        return { ...latest.status, seen: latest.spec.size ?? 0 };
      },
    });
    assert(wrote);
    assertEquals(calls, 2, "computed once on the stale object, once on the re-read one");
    assertEquals((await client.get<W>(Widget, { namespace: "rt", name: "a" })).status, {
      note: "newer note",
      seen: 1,
    });
    assertEquals(
      await updateStatus(client, {
        resource: Widget,
        object: await client.get<W>(Widget, { namespace: "rt", name: "a" }),
        compute: (l) => ({ ...l.status, seen: 1 }),
      }),
      false,
      "no write when nothing changed",
    );
  });

  await t.step(
    "a status write that conflicts with a spec change keeps the reconciled generation",
    async () => {
      const reconciled = await client.get<WG>(Widget, { namespace: "rt", name: "b" });
      const gen = reconciled.metadata.generation!;
      // The spec changes while the reconcile of `reconciled` runs: the write below gets a 409.
      await client.patch(Widget, { namespace: "rt", name: "b", body: { spec: { size: 7 } } });
      const seen: { size: number | undefined; generation: number | undefined }[] = [];
      const wrote = await updateStatus(client, {
        resource: Widget,
        object: reconciled,
        compute: (view) => {
          seen.push({ size: view.spec.size, generation: view.metadata.generation });
          const at = { generation: view.metadata.generation, now: new Date() };
          return {
            observedGeneration: view.metadata.generation ?? 0,
            conditions: setCondition(view.status?.conditions, {
              type: "Ready",
              status: true,
              reason: "Reconciled",
              message: `size ${view.spec.size}`,
            }, at),
          };
        },
      });
      assert(wrote);
      assertEquals(seen.length, 2, "a conflict, then the write");
      const now = await client.get<WG>(Widget, { namespace: "rt", name: "b" });
      assertEquals(now.metadata.generation, gen + 1, "the spec did change");
      assertEquals(now.status?.observedGeneration, gen, "the generation that was reconciled");
      assertEquals(now.status?.conditions?.[0]?.observedGeneration, gen);
      assertEquals(now.status?.conditions?.[0]?.message, "size 1", "computed for its spec");
      assertEquals(seen[1], { size: 1, generation: gen });
    },
  );

  await t.step(
    "failing keys back off exponentially up to the cap; terminal errors wait for a spec change",
    async () => {
      const calls = new Map<string, number[]>();
      const ctrl = new Controller({
        name: "widgets",
        clock: systemClock,
        logger: nullLogger,
        baseBackoffMs: 100,
        maxBackoffMs: 400,
        reconcile: (key) => {
          const list = calls.get(key) ?? [];
          list.push(Date.now());
          calls.set(key, list);
          if (key === "rt/b") throw new Error("always failing");
          if (key === "rt/c") throw new TerminalError("InvalidSpec", "bad spec");
          return Promise.resolve(done);
        },
      });
      ctrl.watch(informer);
      const ctrlStop = new AbortController();
      const ctrlRun = ctrl.run(ctrlStop.signal, { graceMs: 1000 });
      ctrl.enqueue("rt/b");
      ctrl.enqueue("rt/c");
      await waitFor(
        "six attempts of the failing key",
        () => (calls.get("rt/b")?.length ?? 0) >= 6,
        { timeoutMs: budget("react") },
      );
      const times = calls.get("rt/b")!;
      const gaps = times.slice(1).map((x, i) => x - times[i]!);
      // Expected 100, 200, 400, 400, 400 ms: grows, then stays at the cap.
      assert(gaps[0]! >= 90 && gaps[0]! < 300, `first retry after ~100 ms, got ${gaps}`);
      assert(gaps[1]! >= 180, `second retry after ~200 ms, got ${gaps}`);
      assert(
        gaps[2]! >= 380 && gaps[3]! >= 380 && gaps[4]! < 900,
        `capped at ~400 ms, got ${gaps}`,
      );
      await new Promise((r) => setTimeout(r, 800));
      assertEquals(calls.get("rt/c")?.length, 1, "a terminal error is not retried");
      await client.patch(Widget, { namespace: "rt", name: "c", body: { spec: { size: 5 } } });
      await waitFor(
        "a reconcile after the spec change",
        () => (calls.get("rt/c")?.length ?? 0) >= 2,
      );
      await client.patch(Widget, {
        namespace: "rt",
        name: "c",
        body: { status: { note: "status only" } },
        subresource: "status",
      });
      await new Promise((r) => setTimeout(r, 500));
      assertEquals(calls.get("rt/c")?.length, 2, "status-only updates do not trigger reconciles");
      ctrlStop.abort();
      await ctrlRun;
    },
  );

  await t.step("events are recorded, and repeats are aggregated", async () => {
    const rec = new KubeEventRecorder(client, { clock: systemClock, logger: nullLogger });
    const w = await client.get<W>(Widget, { namespace: "rt", name: "a" });
    rec.emit(w, "Warning", "TestFailure", "something failed");
    rec.emit(w, "Warning", "TestFailure", "something failed");
    rec.emit(w, "Normal", "TestReady", "all good");
    await rec.flush();
    const events = JSON.parse(
      (await kube.kubectl(["get", "events", "-n", "rt", "-o", "json"], { check: true })).stdout,
    ).items as {
      reason: string;
      count: number;
      involvedObject: { name: string };
    }[];
    const failure = events.filter((e) => e.reason === "TestFailure");
    assertEquals(failure.length, 1);
    assertEquals(failure[0]!.count, 2);
    assertEquals(failure[0]!.involvedObject.name, "a");
    assert(events.some((e) => e.reason === "TestReady"));
  });

  stop.abort();
  await running;
});

Deno.test(
  { name: "informers come back with the apiserver, not at the end of their backoff", ...opts },
  async () => {
    await using kube = await startKube({ crds: false });
    await widgetsIn(kube, ["quiet"]);
    const client = clientFor(kube.kubeconfigPath);
    let errors = 0;
    // Backoffs far beyond the budget below: the informer is back in time only if the apiserver's
    // first answer wakes it (and ends its watch, which a SIGKILLed apiserver may leave open).
    const informer = new Informer<W>({
      client,
      resource: Widget,
      clock: systemClock,
      logger: nullLogger,
      namespace: "quiet",
      minBackoffMs: 600_000,
      maxBackoffMs: 600_000,
      onStat: (e) => e === "error" && errors++,
    });
    const stop = new AbortController();
    const running = informer.run(stop.signal);
    await informer.waitForSync();
    const reconnected = client.reconnected;
    await kube.stopApiserver();
    const refused = await client.list(Widget, { namespace: "quiet" }).then(() => "", String);
    assert(/Cannot reach the Kubernetes API/.test(refused), refused);
    assert(!reconnected.aborted, "the client saw the apiserver back while it was down");
    await kube.startApiserver();
    await waitFor(
      "the apiserver answers a list again",
      () => client.list(Widget, { namespace: "quiet" }).then(() => true, () => false),
      { timeoutMs: budget("ready") },
    );
    assert(reconnected.aborted, "the first answer after the outage did not signal it");
    assert(!client.reconnected.aborted, "a new outage needs a new signal");
    await client.create(Widget, { namespace: "quiet", body: widget("quiet", "after") });
    await waitFor(
      "the informer sees the widget made after the outage",
      () => informer.get("quiet/after"),
      { timeoutMs: budget("react") },
    );
    stop.abort();
    await running;
    console.log(`informer errors during the outage: ${errors}`);
  },
);

Deno.test(
  { name: "the heartbeat sees an apiserver restart that nothing else asked about", ...opts },
  async () => {
    await using kube = await startKube({ crds: false });
    // Only the heartbeat sends requests on this client, as in a quiet program whose watches a
    // SIGKILLed apiserver left open without an error: nothing else would see the outage.
    const client = clientFor(kube.kubeconfigPath);
    const stop = new AbortController();
    const lines: string[] = [];
    const logger = createLogger({ write: (l) => lines.push(l), format: "text" });
    const beating = client.heartbeat(stop.signal, { intervalMs: 500, logger });
    const reconnected = client.reconnected;
    await kube.stopApiserver();
    await waitFor("the heartbeat sees the apiserver gone", () => client.unreachable, {
      timeoutMs: budget("react"),
    });
    assert(!reconnected.aborted, "the client saw the apiserver back while it was down");
    await kube.startApiserver();
    await waitFor("the heartbeat sees the apiserver back", () => !client.unreachable, {
      timeoutMs: budget("ready"),
    });
    // What ends every watch opened before the outage and wakes every informer in backoff (the
    // test above shows an informer coming back on it).
    assert(reconnected.aborted, "the heartbeat's answer after the outage did not signal it");
    stop.abort();
    await beating;
    // One line as the outage began and one as it ended, however many asks were refused between.
    assertEquals(lines.map((l) => l.replace(/^\S+ (\w+)\s+(.*?)( error=.*)?$/, "$1 $2")), [
      "WARN Kubernetes API unreachable",
      "INFO Kubernetes API answers again",
    ]);
  },
);

Deno.test({ name: "informer re-lists after 410 Gone", ...opts }, async () => {
  // Without the watch cache, watches read etcd directly, and a compacted revision gives 410.
  await using kube = await startKube({
    crds: false,
    apiserverArgs: ["--watch-cache=false", "--etcd-compaction-interval=1s"],
  });
  await widgetsIn(kube, ["quiet", "busy"]);
  const client = clientFor(kube.kubeconfigPath);
  let relists = 0;
  const informer = new Informer<W>({
    client,
    resource: Widget,
    clock: systemClock,
    logger: nullLogger,
    namespace: "quiet",
    watchTimeoutSeconds: 1,
    minBackoffMs: 100,
    onStat: (e) => e === "relist410" && relists++,
  });
  const stop = new AbortController();
  const running = informer.run(stop.signal);
  await informer.waitForSync();
  // Churn elsewhere moves etcd's revision on; compaction then drops the informer's revision.
  for (let i = 0; i < 40 && relists === 0; i++) {
    await client.create(Widget, { namespace: "busy", body: widget("busy", `w${i}`) });
    await new Promise((r) => setTimeout(r, 150));
  }
  await waitFor("a 410 and a re-list", () => relists > 0, { timeoutMs: budget("react") });
  await client.create(Widget, { namespace: "quiet", body: widget("quiet", "later") });
  await waitFor("the object created after the re-list", () => informer.get("quiet/later"));
  stop.abort();
  await running;
});

Deno.test(
  { name: "leader election: one leader of two processes, failover after SIGKILL", ...opts },
  async () => {
    await using kube = await startKube({ crds: true });
    const args = (port: number) => [
      "run",
      "--kubeconfig",
      kube.kubeconfigPath,
      "--leader-elect",
      "--leader-election-namespace",
      "default",
      "--metrics-bind-address",
      `127.0.0.1:${port}`,
      "--health-probe-bind-address",
      `127.0.0.1:${port}`,
    ];
    const ports = [freeLocalPort(), freeLocalPort()];
    await using a = await startProgram(args(ports[0]!));
    await using b = await startProgram(args(ports[1]!));
    const leading = async (port: number) => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /^dbtether_leader 1$/m.test(text);
    };
    const ready = async (port: number) =>
      (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
    const leader = await waitFor("a leader", async () => {
      const l = [
        await leading(ports[0]!).catch(() => false),
        await leading(ports[1]!).catch(() => false),
      ];
      return l.filter(Boolean).length === 1 ? (l[0] ? 0 : 1) + 1 : undefined;
    }, { timeoutMs: budget("failover") });
    const [lead, standby] = leader === 1 ? [a, b] : [b, a];
    const standbyPort = leader === 1 ? ports[1]! : ports[0]!;
    await new Promise((r) => setTimeout(r, 3000));
    assertEquals(await leading(standbyPort), false, "exactly one leader");
    assert(await ready(standbyPort), "a standby is ready (healthy, waiting)");
    const killedAt = Date.now();
    await lead.stop("SIGKILL");
    await waitFor("the standby to lead", () => leading(standbyPort), {
      timeoutMs: budget("failover"),
      intervalMs: 250,
    });
    // A figure for the log, not an assertion: the budget above is the bound.
    console.log(`failover took ${Date.now() - killedAt} ms`);
    const code = await standby.stop("SIGTERM");
    assertEquals(code, 0, "SIGTERM exits 0");
    assert(/Released the leader lease/.test(standby.logs()), "the lease is released on shutdown");
    const lease = JSON.parse(
      (await kube.kubectl(["get", "lease", "dbtether-leader", "-o", "json"], { check: true }))
        .stdout,
    );
    assert(!lease.spec.holderIdentity, "no holder after release");
  },
);

function freeLocalPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

Deno.test(
  { name: "leader election: a release after an unseen renewal still frees the lease", ...opts },
  async (t) => {
    await using kube = await startKube({ crds: false });
    const client = clientFor(kube.kubeconfigPath);
    type L = KubeObject<{ holderIdentity?: string | null; renewTime?: string }>;
    const elector = (identity: string) =>
      new LeaderElector({
        client,
        clock: systemClock,
        logger: nullLogger,
        namespace: "default",
        name: "release-race",
        identity,
      });
    // What a renewal does whose answer the stop cut off: the write lands, we never see it.
    const landedUnseen = async (holder: string) => {
      const l = await client.get<L>(LeaseResource, { namespace: "default", name: "release-race" });
      await client.replace(LeaseResource, {
        namespace: "default",
        name: "release-race",
        body: {
          ...l,
          spec: { ...l.spec, holderIdentity: holder, renewTime: kubeMicroTime(new Date()) },
        },
      });
    };
    const holderNow = async () =>
      (await client.get<L>(LeaseResource, { namespace: "default", name: "release-race" })).spec
        ?.holderIdentity;

    await t.step("our own renewal landed: the release re-reads and frees the lease", async () => {
      const a = elector("replica-a");
      assert(await a.acquire(AbortSignal.timeout(30_000)), "replica-a leads");
      await landedUnseen("replica-a");
      await a.release();
      const left = await holderNow();
      assert(!left, `the lease still names ${left}`);
      assert(a.fence.closed, "nothing of replica-a runs after the release");
    });

    await t.step("someone else holds it now: the release leaves their lease alone", async () => {
      const b = elector("replica-b");
      assert(await b.acquire(AbortSignal.timeout(30_000)), "replica-b leads");
      await landedUnseen("replica-c");
      await b.release();
      assertEquals(await holderNow(), "replica-c");
    });
  },
);
