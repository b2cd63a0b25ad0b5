import { assertEquals, assertThrows } from "../../tests/helpers/assert.ts";
import type { Database } from "../../crds/database.ts";
import { DbtetherError } from "../../lib/errors.ts";
import { checkDatabase, checkSecretName, databaseEntries, usernameOf } from "./spec.ts";
import { makeDatabase as db, makeUser } from "./fixtures_test_util.ts";

/** `fn` throws a domain error with `reason`. */
function throwsReason(fn: () => unknown, reason: string): void {
  assertEquals(assertThrows(fn, DbtetherError).reason, reason);
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
    throwsReason(() => checkDatabase(u, e, db("d", { ns: "other" })), "CrossNamespaceNotAllowed");
    assertEquals(checkDatabase(u, e, db("d", { ns: "other", allowed: ["default"] })).pgName, "d");
  });
  await t.step("waits for Ready", () => {
    throwsReason(
      () =>
        checkDatabase(
          makeUser(),
          { name: "d", namespace: "default", level: "readonly" },
          db("d", { ready: false }),
        ),
      "DatabaseNotReady",
    );
    throwsReason(
      () =>
        checkDatabase(
          makeUser(),
          { name: "d", namespace: "default", level: "readonly" },
          undefined,
        ),
      "DatabaseNotFound",
    );
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
      else throwsReason(() => checkSecretName(u), "SecretNameReserved");
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
      ["NamespaceNotAllowed", "NamespaceNotAllowed"],
      ["ClaimedByOther", "DatabaseNotReady"],
    ] as const
  ) {
    await t.step(`${reason} → ${want}`, () => {
      throwsReason(() => checkDatabase(makeUser(), entry, failing(reason)), want);
    });
  }
});
