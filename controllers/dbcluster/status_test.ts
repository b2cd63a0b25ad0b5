import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { cluster } from "./fixtures_test_util.ts";
import type { IsolationOutcome } from "./isolation.ts";
import { clusterStatus, isolationCondition, isolationTransition } from "./status.ts";

const T0 = Date.parse("2026-03-01T10:00:00Z");
const T1 = Date.parse("2026-03-01T10:05:00Z");

const ok = (isolation?: IsolationOutcome) => ({
  ok: true as const,
  version: "15.4",
  versionNum: 150004,
  ...(isolation ? { isolation } : {}),
});

const restricted: IsolationOutcome = {
  mode: "Restrict",
  closed: ["legacy", "postgres"],
  restricted: [{ database: "postgres", grantees: ["admin", "legacy_app"] }],
  open: [],
};

Deno.test("DBCluster isolation status", async (t) => {
  await t.step("records when dbtether restricted a database, and keeps it later", () => {
    const first = clusterStatus(cluster(), ok(restricted), T0);
    assertEquals(first.isolation, {
      mode: "Restrict",
      databases: [
        { name: "legacy", publicConnect: false },
        {
          name: "postgres",
          publicConnect: false,
          restrictedAt: "2026-03-01T10:00:00Z",
          grantedRoles: 2,
        },
      ],
    });
    const later = clusterStatus(
      cluster(first),
      ok({ ...restricted, restricted: [] }),
      T1,
    );
    assertEquals(later.isolation, first.isolation, "restrictedAt is not moved");
    const iso = later.conditions?.find((c) => c.type === "Isolated");
    assertEquals(iso?.status, "True");
    assertEquals(iso?.reason, "Restricted");
    assertEquals(iso?.observedGeneration, 3);
    assertEquals(later.conditions?.find((c) => c.type === "Ready")?.status, "True");
  });

  await t.step("a failed check keeps the last isolation record and condition", () => {
    const first = clusterStatus(cluster(), ok(restricted), T0);
    const failed = clusterStatus(
      cluster(first),
      { ok: false, reason: "ClusterUnreachable", message: "down" },
      T1,
    );
    assertEquals(failed.isolation, first.isolation);
    assertEquals(failed.conditions?.find((c) => c.type === "Isolated")?.reason, "Restricted");
  });

  const cases: {
    name: string;
    outcome: IsolationOutcome;
    status: boolean;
    reason: string;
    message: RegExp;
  }[] = [
    {
      name: "nothing to restrict",
      outcome: { mode: "Restrict", closed: [], restricted: [], open: [] },
      status: true,
      reason: "Restricted",
      message: /no database that dbtether does not manage/,
    },
    {
      name: "Keep",
      outcome: {
        mode: "Keep",
        closed: [],
        restricted: [],
        open: [{ database: "postgres", reason: "IsolationKept", message: "" }],
      },
      status: false,
      reason: "IsolationKept",
      message: /spec\.isolation is Keep: .* can connect to "postgres"/,
    },
    {
      name: "an owner the admin cannot act for",
      outcome: {
        mode: "Restrict",
        closed: ["postgres"],
        restricted: [],
        open: [{ database: "hr", reason: "OwnerNotActable", message: "Cannot restrict hr" }],
      },
      status: false,
      reason: "OwnerNotActable",
      message: /^Cannot restrict hr\. .*connect to "hr"; the platform team can .*Keep/,
    },
    {
      name: "a failed restriction wins the reason and says it is retried",
      outcome: {
        mode: "Restrict",
        closed: [],
        restricted: [],
        open: [
          { database: "a", reason: "OwnerNotActable", message: "Cannot restrict a" },
          { database: "b", reason: "RestrictFailed", message: "Cannot restrict b: boom" },
        ],
      },
      status: false,
      reason: "RestrictFailed",
      message: /Cannot restrict a; Cannot restrict b: boom\. .*retried at the next health check/,
    },
    {
      name: "the catalog could not be read",
      outcome: { mode: "Restrict", failure: "Cannot check the server's databases: x" },
      status: false,
      reason: "RestrictFailed",
      message: /^Cannot check the server's databases: x$/,
    },
  ];
  for (const c of cases) {
    await t.step(`Isolated condition: ${c.name}`, () => {
      const cond = isolationCondition(c.outcome);
      assertEquals(cond.status, c.status);
      assertEquals(cond.reason, c.reason);
      assert(c.message.test(cond.message), `${cond.message} does not match ${c.message}`);
    });
  }

  await t.step("Events on transitions to False only, once per reason", () => {
    const blocked: IsolationOutcome = {
      mode: "Restrict",
      closed: [],
      restricted: [],
      open: [{ database: "hr", reason: "OwnerNotActable", message: "Cannot restrict hr" }],
    };
    const a = clusterStatus(cluster(), ok(restricted), T0);
    assertEquals(isolationTransition(undefined, a), undefined, "restrictions have their own");
    const b = clusterStatus(cluster(a), ok(blocked), T1);
    assertEquals(isolationTransition(a, b)?.type, "Warning");
    assertEquals(isolationTransition(a, b)?.reason, "OwnerNotActable");
    const c = clusterStatus(cluster(b), ok(blocked), T1);
    assertEquals(isolationTransition(b, c), undefined);
    const kept = clusterStatus(
      cluster(c),
      ok({ ...blocked, mode: "Keep", open: [{ ...blocked.open[0]!, reason: "IsolationKept" }] }),
      T1,
    );
    assertEquals(isolationTransition(c, kept)?.type, "Normal");
  });
});
