import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import type { Database } from "../../crds/database.ts";
import {
  checkDatabase,
  checkSecretName,
  databaseEntries,
  planCredentials,
  planSecrets,
  secretTargets,
  usernameOf,
  usersOfCluster,
} from "./plan.ts";
import { makeUser } from "./fixtures_test_util.ts";
import type { Secret } from "./secret.ts";

function db(name: string, o: { ns?: string; ready?: boolean; allowed?: string[] } = {}): Database {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Database",
    metadata: { name, namespace: o.ns ?? "default" },
    spec: {
      clusterRef: { name: "c" },
      deletionPolicy: "Retain",
      revokePublicConnect: true,
      ...(o.allowed ? { allowedUserNamespaces: o.allowed } : {}),
    },
    status: {
      databaseName: name.replaceAll("-", "_"),
      conditions: [{
        type: "Ready",
        status: o.ready === false ? "False" : "True",
        reason: "Ready",
        message: "",
        lastTransitionTime: "2026-01-01T00:00:00Z",
      }],
    },
  } as Database;
}

Deno.test("spec forms", async (t) => {
  await t.step("README form, username = metadata.name exactly", () => {
    const u = makeUser();
    assertEquals(usernameOf(u), "my-app-readonly");
    assertEquals(databaseEntries(u), [{
      name: "my-app-db",
      namespace: "default",
      level: "readonly",
    }]);
  });
  await t.step("v0.9 database and databases forms", () => {
    const a = makeUser({ database: { name: "x", privileges: "readwrite" } });
    assertEquals(databaseEntries(a), [{ name: "x", namespace: "default", level: "readwrite" }]);
    const b = makeUser({
      privileges: "admin",
      databases: [{ name: "x" }, { name: "y", namespace: "other", privileges: "readonly" }],
    });
    assertEquals(databaseEntries(b), [
      { name: "x", namespace: "default", level: "admin" },
      { name: "y", namespace: "other", level: "readonly" },
    ]);
  });
});

Deno.test("checkDatabase", async (t) => {
  const u = makeUser({ databaseRef: { name: "d", namespace: "other" } });
  const e = databaseEntries(u)[0]!;
  await t.step("cross-namespace refused unless allowed", () => {
    throws(() => checkDatabase(u, e, db("d", { ns: "other" })), {
      reason: "CrossNamespaceNotAllowed",
    });
    assertEquals(checkDatabase(u, e, db("d", { ns: "other", allowed: ["default"] })).pgName, "d");
  });
  await t.step("waits for Ready", () => {
    throws(
      () =>
        checkDatabase(
          makeUser(),
          { name: "d", namespace: "default", level: "readonly" },
          db("d", { ready: false }),
        ),
      { reason: "DatabaseNotReady" },
    );
    throws(
      () =>
        checkDatabase(
          makeUser(),
          { name: "d", namespace: "default", level: "readonly" },
          undefined,
        ),
      { reason: "DatabaseNotFound" },
    );
  });
});

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

Deno.test("planSecrets", async (t) => {
  const ref = {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "DatabaseUser",
    name: "u",
    uid: "uid-1",
    controller: true,
  };
  const conn = { host: "h", port: 5432, databases: ["a", "b"], username: "u", password: "p" };
  await t.step("perDatabase: one Secret per database, stale ones deleted", () => {
    const u = makeUser({
      secretGeneration: "perDatabase",
      databases: [{ name: "a" }, { name: "b" }],
    }, { name: "u" });
    const targets = [
      {
        name: "a",
        namespace: "default",
        level: "readonly" as const,
        pgName: "a",
        clusterName: "c",
      },
      {
        name: "b",
        namespace: "default",
        level: "readonly" as const,
        pgName: "b",
        clusterName: "c",
      },
    ];
    const wanted = secretTargets(u, targets);
    assertEquals(wanted.map((w) => w.name), ["u-a-credentials", "u-b-credentials"]);
    const stale: Secret = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "u-old-credentials", uid: "s9", ownerReferences: [ref] },
      spec: undefined,
    };
    const actions = planSecrets({
      user: u,
      ownerRef: ref,
      wanted,
      conn,
      existing: new Map(),
      owned: [stale],
    });
    assertEquals(actions.map((a) => a.kind), ["write", "write", "delete"]);
  });
  await t.step("Adopt and Merge never take a Secret that belongs to someone else", () => {
    const target = [{ name: "x", databaseResource: "a", database: "a" }];
    const secret = (meta: Partial<Secret["metadata"]>): Secret => ({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "x", ...meta },
      spec: undefined,
      data: {},
    });
    const cases: [string, Secret, string[], string][] = [
      ["nobody's", secret({}), [], "write"],
      [
        "another user's",
        secret({ ownerReferences: [{ ...ref, uid: "v", name: "v" }] }),
        [],
        "conflict:SecretOwnedByOther",
      ],
      [
        "a credentials record",
        secret({ labels: { "dbtether.io/credentials-state": "true" } }),
        [],
        "conflict:SecretOwnedByOther",
      ],
      [
        "a DBCluster's credentials",
        secret({}),
        ['DBCluster "main"'],
        "conflict:SecretOwnedByOther",
      ],
    ];
    for (const mode of ["Adopt", "Merge"] as const) {
      const u = makeUser({ secret: { template: "raw", onConflict: mode, name: "x" } }, {
        name: "u",
      });
      for (const [what, s, readers, want] of cases) {
        const [a] = planSecrets({
          user: u,
          ownerRef: ref,
          wanted: target,
          conn,
          existing: new Map([["x", s]]),
          owned: [],
          referencedBy: () => readers,
        });
        assertEquals(
          a!.kind === "conflict" ? `conflict:${a!.reason}` : a!.kind,
          want,
          `${mode}: ${what}`,
        );
      }
    }
  });
});

Deno.test("checkSecretName refuses names of credentials records", async (t) => {
  const cases: [string, string | undefined, boolean][] = [
    ["unset", undefined, true],
    ["an ordinary name", "app-db", true],
    ["another user's record", "dbtether-victim-state", false],
    ["its own record", "dbtether-u-state", false],
  ];
  for (const [name, secretName, ok] of cases) {
    await t.step(name, () => {
      const u = makeUser({
        secret: {
          template: "raw",
          onConflict: "Adopt",
          ...(secretName ? { name: secretName } : {}),
        },
      }, { name: "u" });
      if (ok) checkSecretName(u);
      else throws(() => checkSecretName(u), { reason: "SecretNameReserved" });
    });
  }
});

Deno.test("a Database's server trouble is the user's reason too", async (t) => {
  const failing = (reason: string): Database => {
    const d = db("x", { ready: false });
    d.status!.conditions![0] = { ...d.status!.conditions![0]!, reason, message: "server down" };
    return d;
  };
  const entry = { name: "x", namespace: "default", level: "readonly" as const };
  for (
    const [reason, want] of [
      ["ClusterUnreachable", "ClusterUnreachable"],
      ["AuthenticationFailed", "AuthenticationFailed"],
      ["ClaimedByOther", "DatabaseNotReady"],
    ] as const
  ) {
    await t.step(`${reason} → ${want}`, () => {
      throws(() => checkDatabase(makeUser(), entry, failing(reason)), (e: Error) => {
        assertEquals((e as Error & { reason: string }).reason, want);
        return true;
      });
    });
  }
});

Deno.test("usersOfCluster: through the Databases, or the status when a Database is gone", () => {
  const a = makeUser({ databaseRef: { name: "x" } }, { name: "a" });
  const b = makeUser({ databaseRef: { name: "gone" } }, { name: "b" });
  b.status = { clusterName: "c" };
  const c = makeUser({ databaseRef: { name: "x" } }, { name: "c", namespace: "other" });
  assertEquals(usersOfCluster([a, b, c], [db("x")], "c"), ["default/a", "default/b"]);
  assertEquals(usersOfCluster([a, b, c], [db("x")], "d"), []);
});
