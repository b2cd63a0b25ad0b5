import { assertEquals } from "../../tests/helpers/assert.ts";
import type { DBCluster } from "../../crds/dbcluster.ts";
import { cluster } from "./fixtures_test_util.ts";
import { checkEvents, checkInterval, planDBCluster } from "./plan.ts";
import { clusterStatus } from "./status.ts";

const T0 = Date.parse("2026-03-01T10:00:00Z");
const MIN = 60_000;

Deno.test("checkInterval: spec.healthCheckInterval, else the flag", async (t) => {
  const cases = [
    { name: "empty", interval: "", want: 5 * MIN },
    { name: "set", interval: "30s", want: 30_000 },
    { name: "zero", interval: "0s", want: 5 * MIN },
    { name: "invalid", interval: "soon", want: 5 * MIN },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assertEquals(
        checkInterval(cluster(undefined, { healthCheckInterval: c.interval }), 5 * MIN),
        c.want,
      );
    });
  }
});

Deno.test("planDBCluster: check unless nothing changed inside the interval", async (t) => {
  const last = { generation: 3, secretVersion: "7", at: T0 };
  const cases = [
    { name: "never checked", c: cluster(), last: undefined, sv: "7", now: T0, want: "check" },
    {
      name: "connected, unchanged, inside the interval",
      c: cluster({ phase: "Connected" }),
      last,
      sv: "7",
      now: T0 + MIN,
      want: "wait:240000",
    },
    {
      name: "the credentials Secret changed",
      c: cluster({ phase: "Connected" }),
      last,
      sv: "8",
      now: T0 + MIN,
      want: "check",
    },
    {
      name: "the interval is over",
      c: cluster({ phase: "Connected" }),
      last,
      sv: "7",
      now: T0 + 5 * MIN,
      want: "check",
    },
    {
      name: "not connected",
      c: cluster({ phase: "Failed" }),
      last,
      sv: "7",
      now: T0 + MIN,
      want: "check",
    },
    {
      name: "connected, but another controller's connect found the server gone",
      c: cluster({ phase: "Connected" }),
      last,
      sv: "7",
      now: T0 + MIN,
      reachable: false,
      want: "check",
    },
    {
      name: "connected, and the connects agree",
      c: cluster({ phase: "Connected" }),
      last,
      sv: "7",
      now: T0 + MIN,
      reachable: true,
      want: "wait:240000",
    },
    {
      name: "failed, and a connect found the server back",
      c: cluster({ phase: "Failed" }),
      last,
      sv: "7",
      now: T0 + MIN,
      reachable: true,
      want: "check",
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const a = planDBCluster(c.c, {
        last: c.last,
        secretVersion: c.sv,
        now: c.now,
        intervalMs: 5 * MIN,
        reachable: "reachable" in c ? c.reachable : undefined,
      });
      assertEquals(a.kind === "wait" ? `wait:${a.afterMs}` : a.kind, c.want);
      if (a.kind === "check") assertEquals(a.inputs, { generation: 3, secretVersion: c.sv });
    });
  }
});

Deno.test("checkEvents: what a check announces", async (t) => {
  const ok = { ok: true as const, version: "15.4", versionNum: 150004 };
  const failed = { ok: false as const, reason: "ClusterUnreachable" as const, message: "down" };
  const reasons = (before: DBCluster, outcome: typeof ok | typeof failed) => {
    const written = clusterStatus(before, outcome, T0);
    return checkEvents({ before: before.status, written }, outcome).map((e) =>
      `${e.type}:${e.reason}`
    );
  };
  await t.step("first connection", () => {
    assertEquals(reasons(cluster(), ok), ["Normal:Connected"]);
  });
  await t.step("still connected: nothing", () => {
    assertEquals(reasons(cluster({ phase: "Connected" }), ok), []);
  });
  await t.step("a failure is announced once", () => {
    assertEquals(reasons(cluster({ phase: "Connected" }), failed), ["Warning:ClusterUnreachable"]);
    assertEquals(reasons(cluster({ phase: "Failed" }), failed), []);
  });
  await t.step("each restriction has its Event", () => {
    const outcome = {
      ...ok,
      isolation: {
        mode: "Restrict" as const,
        closed: ["legacy"],
        restricted: [{ database: "legacy", grantees: ["app"] }],
        open: [],
      },
    };
    const before = cluster({ phase: "Connected" });
    const events = checkEvents({ before: before.status, written: undefined }, outcome);
    assertEquals(events.map((e) => e.reason), ["Restricted"]);
    assertEquals(
      events[0]?.message,
      `Replaced PUBLIC's CONNECT on database "legacy" with CONNECT for the 1 login role(s) ` +
        `dbtether did not create: "app"`,
    );
  });
});
