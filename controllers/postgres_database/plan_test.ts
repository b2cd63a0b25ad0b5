import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { PostgresDatabase } from "../../crds/postgres_database.ts";
import type { RoleInfo, ServerSnapshot } from "../postgres/catalog.ts";
import {
  FINALIZER,
  needsServer,
  type ObservedSecret,
  type PgdbInputs,
  planPostgresDatabase,
  type SecretState,
  secretStateOf,
  serverQueryOf,
  serverStateOf,
} from "./plan.ts";
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

function secret(meta: Partial<ObservedSecret["metadata"]> = {}): ObservedSecret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "secret-pg-db-test", namespace: "team", ...meta },
    spec: undefined,
    data: { PGPASSWORD: btoa("pw") },
  };
}

function snapshot(roles: Record<string, Partial<RoleInfo>> = {}): ServerSnapshot {
  return {
    currentUser: "admin",
    versionNum: 160000,
    roles: new Map(
      Object.entries(roles).map((
        [name, r],
      ) => [name, {
        name,
        canLogin: true,
        connectionLimit: -1,
        superuser: false,
        comment: null,
        ...r,
      }]),
    ),
    memberships: [],
    adminInherits: new Set(),
    settings: new Map(),
  };
}

Deno.test("secretStateOf: whose the target Secret is", async (t) => {
  const ours = { apiVersion: "experimental.bujarmurati.com/v1", kind: "PostgresDatabase" };
  const cases: {
    name: string;
    secret: ObservedSecret | undefined;
    readers?: string[];
    ownedByUs?: boolean;
    claimedBy?: string;
  }[] = [
    { name: "no Secret", secret: undefined },
    {
      name: "owned by this object",
      secret: secret({ ownerReferences: [{ ...ours, name: "pg-db-test", uid: "u1" }] }),
      ownedByUs: true,
    },
    {
      name: "owned by another dbtether resource",
      secret: secret({ ownerReferences: [{ ...ours, name: "other", uid: "u2" }] }),
      ownedByUs: false,
      claimedBy: 'PostgresDatabase "other"',
    },
    {
      name: "read by a DBCluster",
      secret: secret(),
      readers: ['DBCluster "main"'],
      ownedByUs: false,
      claimedBy: 'DBCluster "main", which reads credentials from it',
    },
    { name: "nobody's", secret: secret(), ownedByUs: false },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const s = secretStateOf(pgdb(), { secret: c.secret, readers: c.readers ?? [] });
      assertEquals(s?.ownedByUs, c.ownedByUs);
      assertEquals(s?.claimedBy, c.claimedBy);
      if (s) assertEquals(s.data.PGPASSWORD, "pw");
    });
  }
});

Deno.test("needsServer: a deleting PostgresDatabase only removes its Secret", () => {
  assert(needsServer(pgdb()));
  assert(!needsServer(pgdb({ deleting: true })));
});

Deno.test("serverQueryOf: adoptable roles are read only with adoption and consent", async (t) => {
  const granted = { granted: true, how: "x" };
  const cases = [
    { name: "no adoption", p: pgdb(), consent: undefined, adoptable: false },
    {
      name: "adoption without consent",
      p: pgdb({ annotations: { "dbtether.io/adopt": "true" } }),
      consent: undefined,
      adoptable: false,
    },
    {
      name: "adoption refused",
      p: pgdb({ annotations: { "dbtether.io/adopt": "true" } }),
      consent: { granted: false, how: "x" },
      adoptable: false,
    },
    {
      name: "adoption granted",
      p: pgdb({ annotations: { "dbtether.io/adopt": "true" } }),
      consent: granted,
      adoptable: true,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const q = serverQueryOf(c.p, c.consent);
      assertEquals(q.roles, ["test_db"]);
      assertEquals(q.adoptable?.roles, c.adoptable ? ["test_db"] : undefined);
    });
  }
});

Deno.test("serverStateOf: the role's claim is checked before any SQL", async (t) => {
  const at = { host: "db", port: 5432, adminRole: "admin", consent: undefined };
  await t.step("missing role", () => {
    const s = serverStateOf(pgdb(), { ...at, snap: snapshot() });
    assertEquals(s.kind === "ready" && [s.roleExists, s.roleRefusal], [false, undefined]);
  });
  await t.step("superuser role is refused", () => {
    const s = serverStateOf(pgdb(), { ...at, snap: snapshot({ test_db: { superuser: true } }) });
    assertEquals(s.kind === "ready" && [s.roleExists, s.roleRefusal?.reason], [
      true,
      "RoleIsSuperuser",
    ]);
    const plan = planPostgresDatabase(pgdb(), { server: s, secret: undefined, now: T0 });
    assertEquals([plan.actions, plan.blocked?.reason, plan.blocked?.terminal], [
      [],
      "RoleIsSuperuser",
      true,
    ]);
  });
});

Deno.test("planPostgresDatabase: writeSecret announces only a new password", async (t) => {
  const announce = (secret: Parameters<typeof secretStateOf>[1]["secret"], interval?: number) => {
    const plan = planPostgresDatabase(pgdb(), {
      server,
      secret: secretStateOf(pgdb(), { secret, readers: [] }),
      now: T0,
      ...(interval === undefined ? {} : { rotationIntervalMs: interval }),
    });
    const w = plan.actions.find((a) => a.kind === "writeSecret");
    return w?.kind === "writeSecret" ? w.announce ?? "none" : "no write";
  };
  const owned = secret({
    ownerReferences: [{
      apiVersion: "experimental.bujarmurati.com/v1",
      kind: "PostgresDatabase",
      name: "pg-db-test",
      uid: "u1",
    }],
    creationTimestamp: "2026-01-01T00:00:00Z",
  });
  await t.step("a new Secret", () => assertEquals(announce(undefined), "SecretCreated"));
  await t.step("a Secret with stale data keeps its password", () => {
    assertEquals(announce(owned), "none");
  });
  await t.step("a rotation that is due", () => assertEquals(announce(owned, 0), "PasswordRotated"));
});
