import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { PostgresDatabase } from "../../crds/postgres_database.ts";
import type { RoleInfo, ServerSnapshot } from "../postgres/catalog.ts";
import {
  needsServer,
  type ObservedSecret,
  planPostgresDatabase,
  secretStateOf,
  serverQueryOf,
  serverStateOf,
} from "./plan.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");

function pgdb(o: { adopt?: boolean; deleting?: boolean } = {}): PostgresDatabase {
  return {
    apiVersion: "experimental.bujarmurati.com/v1",
    kind: "PostgresDatabase",
    metadata: {
      name: "pg-db-test",
      namespace: "team",
      uid: "u1",
      generation: 1,
      ...(o.adopt ? { annotations: { "dbtether.io/adopt": "true" } } : {}),
      ...(o.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: { name: "test_db", targetSecret: { name: "secret-pg-db-test" } },
  };
}

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
      p: pgdb({ adopt: true }),
      consent: undefined,
      adoptable: false,
    },
    {
      name: "adoption refused",
      p: pgdb({ adopt: true }),
      consent: { granted: false, how: "x" },
      adoptable: false,
    },
    { name: "adoption granted", p: pgdb({ adopt: true }), consent: granted, adoptable: true },
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
  const server = {
    kind: "ready",
    host: "db",
    port: 5432,
    adminRole: "admin",
    roleExists: true,
  } as const;
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
