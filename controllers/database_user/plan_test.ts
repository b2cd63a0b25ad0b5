import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { DatabaseUser } from "../../crds/database_user.ts";
import {
  type ObservedUser,
  type PendingState,
  planCredentials,
  planDeletion,
  planTargets,
  planUser,
  type UserAction,
  type UserPlan,
} from "./plan.ts";
import type { Secret } from "./secret.ts";
import { type DatabaseTarget, FINALIZER, ownerRefOf } from "./spec.ts";
import { type CredentialsState, stateSecret } from "./state.ts";
import { makeDatabase, makeUser } from "./fixtures_test_util.ts";

const NOW = Date.UTC(2026, 0, 10);
const DAY = 86_400_000;

/** A user that already has its finalizer (the common case after the first pass). */
function finalized(user: DatabaseUser): DatabaseUser {
  return { ...user, metadata: { ...user.metadata, finalizers: [FINALIZER] } };
}

const target: DatabaseTarget = {
  name: "my-app-db",
  namespace: "default",
  level: "readonly",
  pgName: "my_app_db",
  clusterName: "c",
};

function record(user: DatabaseUser, state: CredentialsState): Secret {
  return stateSecret(state, { owner: user, ownerRef: ownerRefOf(user), existing: undefined });
}

function appSecret(user: DatabaseUser, name = "my-app-readonly-credentials"): Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name,
      namespace: "default",
      uid: `uid-${name}`,
      ownerReferences: [ownerRefOf(user)],
    },
    spec: undefined,
    data: {},
  };
}

function observed(user: DatabaseUser, o: Partial<ObservedUser> = {}): ObservedUser {
  return {
    user,
    targets: [target],
    clusterName: "c",
    server: { host: "db.example", port: 5432 },
    record: undefined,
    existing: new Map(),
    owned: [],
    readers: new Map(),
    delivery: { to: undefined, allowed: false, existing: new Map(), copies: [] },
    now: NOW,
    ...o,
  };
}

const settled: CredentialsState = {
  role: "my-app-readonly",
  password: "p",
  updatedAt: new Date(NOW - DAY).toISOString().replace(/\.\d+Z$/, "Z"),
  secrets: ["my-app-readonly-credentials"],
};

const kinds = (p: { actions: readonly UserAction[] }) => p.actions.map((a) => a.kind);

Deno.test("planCredentials", async (t) => {
  const base = {
    username: "app",
    alternating: false,
    importFrom: undefined,
    due: undefined,
    request: undefined,
    importFailed: false,
  };
  await t.step("a pending password is finished first", () => {
    const state = {
      secrets: [],
      pending: { role: "app", password: "x", reason: "Created" as const },
    };
    assertEquals(planCredentials({ ...base, state }), { kind: "apply" });
  });
  await t.step("no record: import, else create", () => {
    assertEquals(planCredentials({ ...base, state: { secrets: [] }, importFrom: "s" }), {
      kind: "import",
      secret: "s",
    });
    assertEquals(
      planCredentials({ ...base, state: { secrets: [] }, importFrom: "s", importFailed: true }),
      { kind: "begin", role: "app", reason: "Created" },
    );
  });
  await t.step("steady without a due rotation: no new password every reconcile", () => {
    const state = { secrets: ["a", "b"], role: "app", password: "p" };
    assertEquals(planCredentials({ ...base, state }), { kind: "steady" });
  });
  await t.step("Alternating rotates the other role", () => {
    const state = { secrets: [], role: "app", password: "p" };
    assertEquals(
      planCredentials({ ...base, alternating: true, state, due: "Requested", request: "1" }),
      {
        kind: "begin",
        role: "app_b",
        reason: "Requested",
        request: "1",
      },
    );
  });
});

Deno.test("planTargets: what the spec names, checked before the server is asked", async (t) => {
  const lookup = (dbs: Record<string, ReturnType<typeof makeDatabase>>) => (e: { name: string }) =>
    dbs[e.name];
  const ready = { "my-app-db": makeDatabase("my-app-db") };
  await t.step("an invalid username is InvalidUsername, terminal (not InvalidName)", () => {
    const cases: [string, DatabaseUser][] = [
      ["metadata.name longer than 63 bytes", makeUser({}, { name: "a".repeat(70) })],
      ["a reserved metadata.name", makeUser({}, { name: "postgres" })],
      ["a reserved prefix in spec.username", makeUser({ username: "pg_app" })],
    ];
    for (const [what, user] of cases) {
      const p = planTargets(user, lookup(ready));
      assertEquals(p.kind === "blocked" && p.blocked.reason, "InvalidUsername", what);
      assertEquals(p.kind === "blocked" && p.blocked.terminal, true, what);
    }
  });
  await t.step("a defaulted username says to set spec.username", () => {
    const p = planTargets(makeUser({}, { name: "postgres" }), lookup(ready));
    assert(p.kind === "blocked" && /set spec\.username/.test(p.blocked.message));
  });
  await t.step("the checks of spec.ts become blocked reasons", () => {
    const missing = planTargets(makeUser(), lookup({}));
    assertEquals(missing.kind === "blocked" && missing.blocked, {
      reason: "DatabaseNotFound",
      message: 'Database "my-app-db" does not exist',
      terminal: false,
    });
    const reserved = makeUser({
      secret: { template: "raw", onConflict: "Fail", name: "dbtether-x-state" },
    });
    const p = planTargets(reserved, lookup(ready));
    assertEquals(p.kind === "blocked" && p.blocked.reason, "SecretNameReserved");
    const split = makeUser({ databases: [{ name: "a" }, { name: "b" }] });
    const q = planTargets(
      split,
      lookup({
        a: makeDatabase("a"),
        b: makeDatabase("b", { cluster: "other" }),
      }),
    );
    assertEquals(q.kind === "blocked" && q.blocked.reason, "DatabasesOnDifferentClusters");
  });
  await t.step("usable Databases give the targets and their DBCluster", () => {
    const p = planTargets(makeUser(), lookup(ready));
    assertEquals(p, { kind: "targets", targets: [target], clusterName: "c" });
  });
});

Deno.test("planUser: one credentials step per pass, the record before the verifier", async (t) => {
  const user = makeUser();
  await t.step("a new user: finalizer, then the password is only recorded", () => {
    const p = planUser(observed(user));
    assertEquals(p.kind, "credentials");
    assertEquals(kinds(p as Extract<UserPlan, { kind: "credentials" }>), [
      "addFinalizer",
      "recordPending",
    ]);
    const step = (p as Extract<UserPlan, { kind: "credentials" }>).actions[1];
    assertEquals(step, {
      kind: "recordPending",
      state: { secrets: [] },
      role: "my-app-readonly",
      reason: "Created",
    });
  });
  await t.step("a recorded pending password is applied, and nothing else runs in that pass", () => {
    const state: PendingState = {
      secrets: [],
      pending: { role: "my-app-readonly", password: "new", reason: "Created" },
    };
    const u = finalized(user);
    const p = planUser(observed(u, { record: record(u, state) }));
    assertEquals(p, { kind: "credentials", actions: [{ kind: "applyPending", state }] });
  });
  await t.step("no recorded password: import the one of an old Secret that logs in", () => {
    const u = finalized(user);
    const s = appSecret(u);
    const imported: CredentialsState = { role: "my-app-readonly", password: "old", secrets: [] };
    const existing = new Map([[s.metadata.name, s]]);
    const ok = planUser(
      observed(u, { existing, imported: { secret: s.metadata.name, state: imported } }),
    );
    assertEquals(ok, {
      kind: "credentials",
      actions: [{ kind: "recordImported", state: imported }],
    });
    const refused = planUser(observed(u, {
      existing,
      imported: { secret: s.metadata.name, state: undefined },
    }));
    assertEquals(kinds(refused as Extract<UserPlan, { kind: "credentials" }>), ["recordPending"]);
  });
  await t.step("a deleted Secret and a new rotate request start a rotation", () => {
    const u = finalized(user);
    const deleted = planUser(observed(u, { record: record(u, settled) }));
    assertEquals(
      deleted.kind === "credentials" && deleted.actions[0]?.kind === "recordPending" &&
        deleted.actions[0].reason,
      "SecretDeleted",
    );
    const asked = finalized(makeUser({}, { annotations: { "dbtether.io/rotate": "1" } }));
    const s = appSecret(asked);
    const p = planUser(observed(asked, {
      record: record(asked, settled),
      existing: new Map([[s.metadata.name, s]]),
    }));
    assertEquals(
      p.kind === "credentials" && p.actions[0],
      {
        kind: "recordPending",
        state: settled,
        role: "my-app-readonly",
        reason: "Requested",
        request: "1",
      },
    );
  });
  await t.step("a record of someone else is a conflict, and nothing runs", () => {
    const other = makeUser({}, { name: "other" });
    other.metadata.uid = "uid-2";
    const foreign = {
      ...record(other, settled),
      metadata: { ...record(other, settled).metadata, name: "dbtether-my-app-readonly-state" },
    };
    const p = planUser(observed(finalized(user), { record: foreign }));
    assertEquals(p.kind === "blocked" && p.blocked.reason, "SecretConflict");
  });
});

Deno.test("planUser: a settled record converges roles and Secrets", async (t) => {
  const user = finalized(makeUser({ rotation: { days: 30, strategy: "InPlace" } }));
  await t.step("first time: roles, the Secret written, then the record names it", () => {
    const state = { ...settled, secrets: [] };
    const p = planUser(observed(user, { record: record(user, state) }));
    assert(p.kind === "converge");
    assertEquals(kinds(p), ["ensureRoles", "writeSecrets", "recordSecrets"]);
    assertEquals(p.blocked, undefined);
    assertEquals(p.outcome.secretNames, ["my-app-readonly-credentials"]);
    assertEquals(p.outcome.next, NOW - DAY + 30 * DAY);
    const last = p.actions[2];
    assertEquals(last?.kind === "recordSecrets" && last.state.secrets, [
      "my-app-readonly-credentials",
    ]);
  });
  await t.step(
    "a Secret that belongs to someone else blocks, and the record is not updated",
    () => {
      const state = { ...settled, secrets: [] };
      const theirs: Secret = {
        ...appSecret(user),
        metadata: { name: "my-app-readonly-credentials", namespace: "default" },
      };
      const p = planUser(observed(user, {
        record: record(user, state),
        existing: new Map([[theirs.metadata.name, theirs]]),
      }));
      assert(p.kind === "converge");
      assertEquals(kinds(p), ["ensureRoles"]);
      assertEquals(p.blocked?.reason, "SecretConflict");
    },
  );
});

Deno.test("planDeletion: retain or drop each role, then the Secrets and the finalizer", async (t) => {
  const marker = { namespace: "default", name: "my-app-readonly" };
  const owned = [appSecret(makeUser())];
  await t.step("without the finalizer there is nothing to do", () => {
    assertEquals(planDeletion(makeUser(), { databases: [makeDatabase("my-app-db")], owned }), []);
  });
  await t.step("Delete drops both login roles on the Database's DBCluster", () => {
    const u = finalized(makeUser());
    assertEquals(planDeletion(u, { databases: [makeDatabase("my-app-db")], owned }), [
      { kind: "dropRole", clusterName: "c", role: "my-app-readonly", marker },
      { kind: "dropRole", clusterName: "c", role: "my-app-readonly_b", marker },
      {
        kind: "deleteSecret",
        namespace: "default",
        name: "my-app-readonly-credentials",
        uid: "uid-my-app-readonly-credentials",
      },
      { kind: "removeFinalizer" },
    ]);
  });
  await t.step("Retain keeps the roles (and the one status names), on the recorded cluster", () => {
    const u = finalized(makeUser({ deletionPolicy: "Retain" }));
    u.status = { clusterName: "old", activeRole: "legacy" };
    const p = planDeletion(u, { databases: [undefined], owned: [] });
    assertEquals(p.map((a) => a.kind === "retainRole" ? `${a.clusterName}: ${a.role}` : a.kind), [
      "old: my-app-readonly",
      "old: my-app-readonly_b",
      "old: legacy",
      "removeFinalizer",
    ]);
  });
  await t.step("no DBCluster known: no role is touched", () => {
    const p = planDeletion(finalized(makeUser()), { databases: [undefined], owned });
    assertEquals(p.map((a) => a.kind), ["deleteSecret", "removeFinalizer"]);
  });
});

Deno.test("planDeletion of a gcpIam user: Delete releases dbtether's grants, Retain keeps them", async (t) => {
  const gcp = (o: Record<string, unknown> = {}) =>
    finalized(makeUser({
      username: "sa@p.iam",
      authentication: { type: "gcpIam" },
      databases: [
        { name: "my-app-db", privileges: "readwrite", settings: { lock_timeout: "1s" } },
        { name: "gone-db" },
      ],
      settings: { statement_timeout: "5s" },
      idleInTransactionTimeout: "30s",
      memberOf: ["pg_monitor"],
      ...o,
    }));
  await t.step("Delete: one releaseRole with what the spec granted, never a drop", () => {
    // The second Database is gone: its name in PostgreSQL is unknown, so it is not listed.
    const p = planDeletion(gcp(), { databases: [makeDatabase("my-app-db"), undefined], owned: [] });
    assertEquals(p, [
      {
        kind: "releaseRole",
        clusterName: "c",
        release: {
          username: "sa@p.iam",
          marker: { namespace: "default", name: "my-app-readonly" },
          databases: [{ name: "my_app_db", settings: ["lock_timeout"] }],
          settings: ["statement_timeout", "idle_in_transaction_session_timeout"],
          memberOf: ["pg_monitor"],
        },
      },
      { kind: "removeFinalizer" },
    ]);
  });
  await t.step("Retain: the role keeps its grants (and LOGIN); the Secrets still go", () => {
    const u = gcp({ deletionPolicy: "Retain" });
    const owned = [appSecret(u)];
    const p = planDeletion(u, { databases: [makeDatabase("my-app-db"), undefined], owned });
    assertEquals(p.map((a) => a.kind), ["deleteSecret", "removeFinalizer"]);
  });
  await t.step("no DBCluster known: no role is touched", () => {
    const p = planDeletion(gcp(), { databases: [undefined, undefined], owned: [] });
    assertEquals(p.map((a) => a.kind), ["removeFinalizer"]);
  });
});

Deno.test("planUser: an IAM user has no credentials step and forgets a recorded password", () => {
  const aws = makeUser({ authentication: { type: "awsIam", region: "eu-west-1" } });
  aws.metadata.finalizers = [FINALIZER];
  // New: straight to the roles and a Secret without password; rotation is never planned.
  const fresh = planUser(observed(aws));
  assert(fresh.kind === "converge");
  assertEquals(kinds(fresh), ["ensureRoles", "writeSecrets", "recordSecrets"]);
  const write = fresh.actions[1]!.kind === "writeSecrets" ? fresh.actions[1]!.changes : [];
  const data = JSON.stringify(write);
  assert(!data.includes("password"), data);
  // Was a password user: PASSWORD NULL first, then the record without the password.
  const p = planUser(observed(aws, { record: record(aws, settled) }));
  const ensure = p.kind === "converge" ? p.actions[0] : undefined;
  assertEquals(ensure?.kind === "ensureRoles" && ensure.clearPassword, true);
  const last = p.kind === "converge" ? p.actions.at(-1) : undefined;
  assertEquals(last?.kind, "recordSecrets");
  assertEquals(last?.kind === "recordSecrets" ? last.state.password : "x", undefined);
  // Settled (the record written, with no password): no PASSWORD NULL, no record write.
  const first = fresh.actions.at(-1);
  assert(first?.kind === "recordSecrets");
  const steady = planUser(observed(aws, { record: record(aws, first.state) }));
  assert(steady.kind === "converge");
  const again = steady.actions[0];
  assertEquals(again?.kind === "ensureRoles" && again.clearPassword, undefined);
  assert(!kinds(steady).includes("recordSecrets"), kinds(steady).join());
  // No region on the user nor on the DBCluster: refused, terminal.
  const none = planUser(observed(makeUser({ authentication: { type: "awsIam" } })));
  assertEquals(none.kind === "blocked" && none.blocked.reason, "InvalidAuthentication");
  assertEquals(none.kind === "blocked" && none.blocked.terminal, true);
  const fromCluster = observed(makeUser({ authentication: { type: "awsIam" } }), {
    server: { host: "db.example", port: 5432, region: "us-east-1" },
  });
  assertEquals(planUser(fromCluster).kind, "converge");
});
