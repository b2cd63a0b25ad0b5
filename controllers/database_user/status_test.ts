import { assertEquals } from "../../tests/helpers/assert.ts";
import { ForbiddenError, RetryableError } from "../../lib/errors.ts";
import { InvalidIdentifierError } from "../postgres/quote.ts";
import {
  computeStatus,
  databasesSummary,
  privilegesSummary,
  readyFailure,
  type StatusInput,
} from "./status.ts";
import { makeUser } from "./fixtures_test_util.ts";

Deno.test("summaries", () => {
  assertEquals(databasesSummary(["db1"]), "db1");
  assertEquals(databasesSummary(["db1", "db2", "db3"]), "db1 (+2)");
  assertEquals(databasesSummary([]), undefined);
  assertEquals(privilegesSummary(["readonly", "readwrite", "readonly"]), "readonly,readwrite");
});

Deno.test("computeStatus", async (t) => {
  const u = makeUser();
  const entries = [{ name: "my-app-db", namespace: "default", level: "readonly" as const }];
  const now = Date.UTC(2026, 0, 1);
  await t.step("Ready shows the README columns", () => {
    const s = computeStatus(u, {
      entries,
      username: "my-app-readonly",
      now,
      ready: { reason: "Ready", message: "ok" },
      secretNames: ["my-app-readonly-credentials"],
    });
    assertEquals(
      [s.databasesSummary, s.username, s.privilegesSummary, s.phase, s.secretName],
      ["my-app-db", "my-app-readonly", "readonly", "Ready", "my-app-readonly-credentials"],
    );
  });
  await t.step("same input twice gives the same status (no write)", () => {
    const input: StatusInput = {
      entries,
      username: "x",
      now,
      ready: { reason: "Ready", message: "ok" },
    };
    const a = computeStatus(u, input);
    const b = computeStatus({ ...u, status: a }, { ...input, now: now + 1000 });
    assertEquals(a, b);
  });
  await t.step("waiting and failing phases", () => {
    const wait = computeStatus(u, {
      entries,
      username: "x",
      now,
      ready: { reason: "DatabaseNotReady", message: "m" },
    });
    assertEquals(wait.phase, "Pending");
    const fail = computeStatus(u, {
      entries,
      username: "x",
      now,
      ready: { reason: "RoleExistsUnmanaged", message: "m", terminal: true },
    });
    assertEquals(fail.phase, "Failed");
  });
});

Deno.test("computeStatus: Observe and pause", async (t) => {
  const entries = [{ name: "my-app-db", namespace: "default", level: "readonly" as const }];
  const now = Date.UTC(2026, 0, 1);
  const base = { entries, username: "x", now };
  const sync = { type: "InSync", status: false, reason: "Differs", message: "d" } as const;
  await t.step("Observed is Ready, OutOfSync is Pending; InSync is kept beside Ready", () => {
    const ok = computeStatus(makeUser(), { ...base, ready: { reason: "Observed", message: "m" } });
    assertEquals(ok.phase, "Ready");
    const off = computeStatus(makeUser(), {
      ...base,
      ready: { reason: "OutOfSync", message: "m" },
      inSync: sync,
    });
    assertEquals(off.phase, "Pending");
    assertEquals(off.conditions!.map((c) => `${c.type}=${c.status}`), [
      "InSync=False",
      "Ready=False",
    ]);
    const manage = computeStatus(makeUser({}, {}), {
      ...base,
      ready: { reason: "Ready", message: "m" },
    });
    assertEquals(manage.conditions!.map((c) => c.type), ["Ready"]);
    const back = computeStatus({ ...makeUser(), status: off }, {
      ...base,
      ready: { reason: "Ready", message: "m" },
    });
    assertEquals(back.conditions!.map((c) => c.type), ["Ready"], "Manage removes InSync");
  });
  await t.step("an unknown pause value is reported beside Ready", () => {
    const u = makeUser({}, { annotations: { "dbtether.io/reconcile": "yes please" } });
    const s = computeStatus(u, { ...base, ready: { reason: "Ready", message: "m" } });
    const p = s.conditions!.find((c) => c.type === "Paused")!;
    assertEquals([p.status, p.reason, s.phase], ["False", "InvalidPauseValue", "Ready"]);
  });
});

Deno.test("readyFailure: one mapping of thrown values to the declared reasons", async (t) => {
  await t.step("reasons of the SQL module and the resolver pass as they are", () => {
    assertEquals(readyFailure(new InvalidIdentifierError("Invalid name: admin")), {
      reason: "InvalidName",
      message: "Invalid name: admin",
      terminal: true,
    });
    assertEquals(readyFailure(new RetryableError("ClusterUnreachable", "down")).terminal, false);
  });
  await t.step("API errors and anything unexpected are ReconcileFailed", () => {
    assertEquals(readyFailure(new ForbiddenError("no")).reason, "ReconcileFailed");
    assertEquals(readyFailure(new TypeError("x")), {
      reason: "ReconcileFailed",
      message: "x",
      terminal: false,
    });
  });
});
