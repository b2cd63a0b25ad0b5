import { assertEquals } from "../../tests/helpers/assert.ts";
import type { PostgresDatabase } from "../../crds/postgres_database.ts";
import { FINALIZER, type PgdbInputs, planPostgresDatabase, type SecretState } from "./plan.ts";
import { computePgdbStatus } from "./status.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");

function pgdb(o: {
  finalizer?: boolean;
  deleting?: boolean;
  passwordUpdatedAt?: string;
  annotations?: Record<string, string>;
} = {}): PostgresDatabase {
  return {
    apiVersion: "experimental.bujarmurati.com/v1",
    kind: "PostgresDatabase",
    metadata: {
      name: "pg-db-test",
      namespace: "team",
      uid: "u1",
      generation: 1,
      ...(o.finalizer ? { finalizers: [FINALIZER] } : {}),
      ...(o.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
      ...(o.annotations ? { annotations: o.annotations } : {}),
    },
    spec: { name: "test_db", targetSecret: { name: "secret-pg-db-test", userNamePostfix: "@srv" } },
    ...(o.passwordUpdatedAt ? { status: { passwordUpdatedAt: o.passwordUpdatedAt } } : {}),
  };
}

const server = {
  kind: "ready",
  host: "db.example",
  port: 5432,
  adminRole: "admin",
  roleExists: true,
} as const;
const data = {
  PGDATABASE: "test_db",
  PGUSER: "test_db@srv",
  PGPASSWORD: "pw",
  PGHOST: "db.example",
  PGPORT: "5432",
};
const ours = (d: Record<string, string> = data): SecretState => ({
  ownedByUs: true,
  data: d,
  creationTimestamp: "2026-01-01T00:00:00Z",
});

function kinds(p: PostgresDatabase, i: Partial<PgdbInputs>) {
  const plan = planPostgresDatabase(p, { server, secret: undefined, now: T0, ...i });
  return {
    actions: plan.actions.map((a) => a.kind === "ensureRole" ? `ensureRole:${a.password}` : a.kind),
    blocked: plan.blocked?.reason,
    rotateInMs: plan.rotateInMs,
  };
}

Deno.test("planPostgresDatabase", async (t) => {
  const table: [string, PostgresDatabase, Partial<PgdbInputs>, unknown][] = [
    ["first reconcile: finalizer, database, role with a new password, Secret", pgdb(), {}, {
      actions: ["addFinalizer", "ensureDatabase", "ensureRole:new", "writeSecret"],
      blocked: undefined,
      rotateInMs: undefined,
    }],
    ["converged: nothing is written", pgdb({ finalizer: true }), { secret: ours() }, {
      actions: ["ensureDatabase", "ensureRole:keep"],
      blocked: undefined,
      rotateInMs: undefined,
    }],
    ["Secret deleted: recreated with a new password", pgdb({ finalizer: true }), {}, {
      actions: ["ensureDatabase", "ensureRole:new", "writeSecret"],
      blocked: undefined,
      rotateInMs: undefined,
    }],
    [
      "role dropped behind our back: recreated with the Secret's password",
      pgdb({ finalizer: true }),
      { secret: ours(), server: { ...server, roleExists: false } },
      {
        actions: ["ensureDatabase", "ensureRole:secret"],
        blocked: undefined,
        rotateInMs: undefined,
      },
    ],
    [
      "host changed: Secret updated, password kept",
      pgdb({ finalizer: true }),
      { secret: ours({ ...data, PGHOST: "old" }) },
      {
        actions: ["ensureDatabase", "ensureRole:keep", "writeSecret"],
        blocked: undefined,
        rotateInMs: undefined,
      },
    ],
    [
      "rotation not due: requeue for when it is",
      pgdb({ finalizer: true, passwordUpdatedAt: "2026-01-01T00:00:00Z" }),
      { secret: ours(), rotationIntervalMs: 60_000, now: T0 + 20_000 },
      { actions: ["ensureDatabase", "ensureRole:keep"], blocked: undefined, rotateInMs: 40_000 },
    ],
    [
      "rotation due",
      pgdb({ finalizer: true, passwordUpdatedAt: "2026-01-01T00:00:00Z" }),
      { secret: ours(), rotationIntervalMs: 60_000, now: T0 + 60_000 },
      {
        actions: ["ensureDatabase", "ensureRole:new", "writeSecret"],
        blocked: undefined,
        rotateInMs: 60_000,
      },
    ],
    [
      "a foreign Secret is not overwritten",
      pgdb(),
      { secret: { ownedByUs: false, data: {} } },
      { actions: [], blocked: "SecretExistsUnmanaged", rotateInMs: undefined },
    ],
    [
      "adopt takes a foreign Secret nobody manages",
      pgdb({ annotations: { "dbtether.io/adopt": "true" } }),
      { secret: { ownedByUs: false, data: {} } },
      {
        actions: ["addFinalizer", "ensureDatabase", "ensureRole:new", "writeSecret"],
        blocked: undefined,
        rotateInMs: undefined,
      },
    ],
    [
      "adopt never takes a Secret of another resource",
      pgdb({ annotations: { "dbtether.io/adopt": "true" } }),
      { secret: { ownedByUs: false, claimedBy: 'DatabaseUser "v"', data: {} } },
      { actions: [], blocked: "SecretOwnedByOther", rotateInMs: undefined },
    ],
    [
      "the login role may not be used: nothing at all, not even the database",
      pgdb({ annotations: { "dbtether.io/adopt": "true" } }),
      {
        server: {
          ...server,
          roleRefusal: { reason: "RoleClaimedByOther", message: "it belongs to someone" },
        },
      },
      { actions: [], blocked: "RoleClaimedByOther", rotateInMs: undefined },
    ],
    [
      "server unavailable: nothing",
      pgdb(),
      { server: { kind: "unavailable", reason: "ClusterNotFound", message: "x" } },
      { actions: [], blocked: "ClusterNotFound", rotateInMs: undefined },
    ],
    [
      "deletion: only the Secret goes",
      pgdb({ finalizer: true, deleting: true }),
      {
        secret: ours(),
        server: { kind: "unavailable", reason: "ClusterUnreachable", message: "" },
      },
      { actions: ["deleteSecret", "removeFinalizer"], blocked: undefined, rotateInMs: undefined },
    ],
    [
      "deletion leaves a foreign Secret alone",
      pgdb({ finalizer: true, deleting: true }),
      { secret: { ownedByUs: false, data: {} } },
      { actions: ["removeFinalizer"], blocked: undefined, rotateInMs: undefined },
    ],
  ];
  for (const [name, p, i, want] of table) {
    await t.step(name, () => assertEquals(kinds(p, i), want));
  }

  await t.step("Secret data: PGUSER carries the postfix, the role does not", () => {
    const plan = planPostgresDatabase(pgdb({ finalizer: true }), {
      server,
      secret: ours({ ...data, PGPORT: "1" }),
      now: T0,
    });
    const role = plan.actions.find((a) => a.kind === "ensureRole");
    const secret = plan.actions.find((a) => a.kind === "writeSecret");
    assertEquals(role?.kind === "ensureRole" && role.spec.username, "test_db");
    assertEquals(secret?.kind === "writeSecret" && secret.data, data);
  });
});

Deno.test("computePgdbStatus", async (t) => {
  const now = new Date(T0);
  await t.step("ready with passwordUpdatedAt", () => {
    const s = computePgdbStatus(pgdb(), { converged: true, passwordUpdatedAt: T0 }, { now });
    assertEquals([s.phase, s.secretName, s.passwordUpdatedAt], [
      "Ready",
      "secret-pg-db-test",
      "2026-01-01T00:00:00Z",
    ]);
  });
  await t.step("failure", () => {
    const s = computePgdbStatus(pgdb(), {
      converged: false,
      failure: { reason: "ClusterUnreachable", message: "down" },
    }, { now });
    assertEquals([s.phase, s.message], ["Failed", "down"]);
  });
  await t.step("stable across reconciles", () => {
    const a = computePgdbStatus(pgdb(), { converged: true, passwordUpdatedAt: T0 }, { now });
    const p = { ...pgdb(), status: a };
    assertEquals(computePgdbStatus(p, { converged: true }, { now: new Date(T0 + 5000) }), a);
  });
});

Deno.test("planPostgresDatabase passes adoption and consent to the postgres module", () => {
  const consent = { granted: true, how: "x" };
  const plan = planPostgresDatabase(pgdb({ annotations: { "dbtether.io/adopt": "true" } }), {
    server,
    secret: undefined,
    now: T0,
    consent,
  });
  const db = plan.actions.find((a) => a.kind === "ensureDatabase");
  const role = plan.actions.find((a) => a.kind === "ensureRole");
  assertEquals(db?.kind === "ensureDatabase" && [db.spec.forceAdopt, db.spec.consent], [
    true,
    consent,
  ]);
  assertEquals(role?.kind === "ensureRole" && [role.spec.adopt, role.spec.consent], [
    true,
    consent,
  ]);
  const plain = planPostgresDatabase(pgdb(), { server, secret: undefined, now: T0 });
  const d2 = plain.actions.find((a) => a.kind === "ensureDatabase");
  assertEquals(d2?.kind === "ensureDatabase" && d2.spec.forceAdopt, false);
});
