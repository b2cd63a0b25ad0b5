import { assertEquals } from "../../tests/helpers/assert.ts";
import { planSecrets, secretTargets } from "./secret_plan.ts";
import { makeUser } from "./fixtures_test_util.ts";
import type { Secret } from "./secret.ts";

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
