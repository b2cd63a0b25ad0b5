import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { Database } from "../../crds/database.ts";
import { computeDatabaseStatus, type DatabaseOutcome, readyTransition } from "./status.ts";

const now = new Date("2026-01-02T03:04:05Z");

function db(
  o: { spec?: Partial<Database["spec"]>; deleting?: boolean; status?: Database["status"] } = {},
): Database {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Database",
    metadata: {
      name: "my-app-db",
      namespace: "team",
      generation: 3,
      ...(o.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: {
      clusterRef: { name: "main" },
      deletionPolicy: "Retain",
      revokePublicConnect: true,
      ...o.spec,
    },
    ...(o.status ? { status: o.status } : {}),
  };
}

Deno.test("computeDatabaseStatus", async (t) => {
  const table: [string, Database, DatabaseOutcome, Partial<Record<string, unknown>>][] = [
    ["ready", db(), { ensured: true }, {
      phase: "Ready",
      databaseName: "my_app_db",
      clusterName: "main",
      ownerRole: "my_app_db_owner",
      observedGeneration: 3,
    }],
    [
      "blocked before any SQL: databaseName still set",
      db(),
      { ensured: false, failure: { reason: "NamespaceNotAllowed", message: "Cannot use x" } },
      { phase: "Failed", message: "Cannot use x", databaseName: "my_app_db" },
    ],
    ["deleting", db({ deleting: true }), { ensured: false }, { phase: "Deleting" }],
    [
      "extension failure is not Ready, with a specific reason",
      db({ spec: { extensions: ["uuid-ossp", "nope"] } }),
      {
        ensured: true,
        extensions: {
          present: ["uuid-ossp"],
          failed: [{ name: "nope", message: "not available" }],
        },
      },
      {
        phase: "Failed",
        message: 'Cannot create extension in database "my_app_db": nope: not available',
        extensions: ["uuid-ossp"],
      },
    ],
  ];
  for (const [name, d, outcome, want] of table) {
    await t.step(name, () => {
      const s = computeDatabaseStatus(d, outcome, { now });
      for (const [k, v] of Object.entries(want)) {
        assertEquals((s as Record<string, unknown>)[k], v, k);
      }
    });
  }

  await t.step("extension failure sets ExtensionsReady=False/ExtensionFailed", () => {
    const s = computeDatabaseStatus(
      db({ spec: { extensions: ["nope"] } }),
      { ensured: true, extensions: { present: [], failed: [{ name: "nope", message: "x" }] } },
      { now },
    );
    const c = s.conditions!.find((c) => c.type === "ExtensionsReady")!;
    assertEquals([c.status, c.reason], ["False", "ExtensionFailed"]);
    assertEquals(s.conditions!.find((c) => c.type === "Ready")!.reason, "ExtensionFailed");
  });

  await t.step("a second identical reconcile computes an identical status", () => {
    const first = computeDatabaseStatus(db(), { ensured: true }, { now });
    const later = new Date(now.getTime() + 60_000);
    const second = computeDatabaseStatus(db({ status: first }), { ensured: true }, { now: later });
    assertEquals(second, first);
  });
});

Deno.test("readyTransition", async (t) => {
  const ready = computeDatabaseStatus(db(), { ensured: true }, { now });
  const failed = computeDatabaseStatus(db(), {
    ensured: false,
    failure: { reason: "ClusterUnreachable", message: "down" },
  }, { now });
  await t.step("first Ready emits Normal", () => {
    assertEquals(readyTransition(undefined, ready)?.type, "Normal");
  });
  await t.step(
    "unchanged emits nothing",
    () => assertEquals(readyTransition(ready, ready), undefined),
  );
  await t.step("failure emits Warning with its reason", () => {
    const e = readyTransition(ready, failed);
    assert(e);
    assertEquals([e.type, e.reason], ["Warning", "ClusterUnreachable"]);
  });
});

Deno.test("computeDatabaseStatus: Observe and pause", async (t) => {
  const observed = db({ spec: { managementPolicy: "Observe" } });
  await t.step("in sync: Ready=True Observed, InSync=True", () => {
    const s = computeDatabaseStatus(observed, {
      ensured: false,
      drift: { differences: [], notes: [] },
    }, { now });
    const c = (t: string) => s.conditions!.find((x) => x.type === t)!;
    assertEquals([c("Ready").status, c("Ready").reason, s.phase], ["True", "Observed", "Ready"]);
    assertEquals([c("InSync").status, c("InSync").reason], ["True", "InSync"]);
    assertEquals(s.ownerRole, undefined, "nothing was ensured");
  });
  await t.step("drift: Ready=False OutOfSync (Pending), InSync=False lists it", () => {
    const s = computeDatabaseStatus(observed, {
      ensured: false,
      drift: { differences: ['ALTER DATABASE "my_app_db" CONNECTION LIMIT 7'], notes: [] },
    }, { now });
    const c = (t: string) => s.conditions!.find((x) => x.type === t)!;
    assertEquals([c("Ready").reason, s.phase], ["OutOfSync", "Pending"]);
    assert(c("InSync").message.includes("CONNECTION LIMIT 7"), c("InSync").message);
  });
  await t.step("Manage again removes InSync and Paused", () => {
    const before = computeDatabaseStatus(observed, {
      ensured: false,
      drift: { differences: ["x"], notes: [] },
      pause: { kind: "paused" },
    }, { now });
    assertEquals(before.conditions!.map((c) => c.type), ["InSync", "Paused", "Ready"]);
    const s = computeDatabaseStatus(db({ status: before }), { ensured: true }, { now });
    assertEquals(s.conditions!.map((c) => c.type), ["Ready"]);
  });
});

Deno.test("computeDatabaseStatus: SchemaOwnersReady", async (t) => {
  const owned = db({
    spec: { schemas: [{ name: "app", owner: { databaseUser: "mig" }, deletionPolicy: "Retain" }] },
  });
  const cond = (d: Database, o: DatabaseOutcome) =>
    computeDatabaseStatus(d, o, { now }).conditions?.find((c) => c.type === "SchemaOwnersReady");
  const message = 'Schema "app" waits for its owner, DatabaseUser "mig": it is being deleted';
  await t.step("a waiting schema: False with its message; Ready stays True", () => {
    const o: DatabaseOutcome = {
      ensured: true,
      waitingSchemas: [{ schema: "app", user: "mig", message }],
    };
    const c = cond(owned, o);
    assertEquals([c?.status, c?.reason, c?.message], ["False", "SchemaOwnerNotReady", message]);
    assertEquals(computeDatabaseStatus(owned, o, { now }).phase, "Ready");
  });
  await t.step("none waiting: True", () => {
    const c = cond(owned, { ensured: true, waitingSchemas: [] });
    assertEquals([c?.status, c?.reason], ["True", "SchemaOwnersReady"]);
  });
  await t.step("no schema owned by a user: no condition, a stale one removed", () => {
    const status = computeDatabaseStatus(owned, {
      ensured: true,
      waitingSchemas: [{ schema: "app", user: "mig", message }],
    }, { now });
    assertEquals(cond(db({ status }), { ensured: true, waitingSchemas: [] }), undefined);
  });
});
