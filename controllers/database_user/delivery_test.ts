import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { DBCluster } from "../../crds/dbcluster.ts";
import {
  type DeliveryAction,
  deliveryAllowed,
  type DeliveryInput,
  deliveryNamespace,
  isCopyOf,
  planDelivery,
  SOURCE_ANNOTATION,
  SOURCE_NAMESPACE_LABEL,
  SOURCE_UID_LABEL,
} from "./delivery.ts";
import { makeUser } from "./fixtures_test_util.ts";
import { decodeData, type Secret } from "./secret.ts";
import { ownersOfSecret } from "./watches.ts";

const cluster = {
  spec: {
    secretDelivery: { allow: [{ sourceNamespace: "team-a", targetNamespaces: ["app-a"] }] },
  },
} as Pick<DBCluster, "spec">;

const user = makeUser(
  { secret: { template: "raw", onConflict: "Fail", namespace: "app-a" } },
  { name: "app", namespace: "team-a" },
);

const conn = {
  host: "db.example",
  port: 5432,
  databases: ["shop"],
  username: "app",
  password: "s3cret",
};
const wanted = [{ name: "app-credentials", databaseResource: "shop", database: "shop" }];

function input(o: Partial<DeliveryInput> = {}): DeliveryInput {
  return {
    user,
    wanted,
    conn,
    to: "app-a",
    allowed: true,
    existing: new Map(),
    copies: [],
    ...o,
  };
}

function secret(ns: string, labels: Record<string, string> = {}, uid = "s-1"): Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "app-credentials", namespace: ns, uid, labels },
    spec: undefined,
    data: {},
  };
}

const copyLabels = { [SOURCE_UID_LABEL]: "uid-1", [SOURCE_NAMESPACE_LABEL]: "team-a" };

function kinds(actions: DeliveryAction[]): string[] {
  return actions.map((a) => a.kind === "refused" ? `refused:${a.reason}` : a.kind);
}

Deno.test("deliveryAllowed: only a listed pair, by exact names", async (t) => {
  const cases: [string, string, boolean][] = [
    ["team-a", "app-a", true],
    ["team-a", "kube-system", false],
    ["team-b", "app-a", false],
    ["team-a", "app-a-2", false],
  ];
  for (const [from, to, want] of cases) {
    await t.step(`${from} -> ${to}`, () => {
      assertEquals(deliveryAllowed(cluster, { from, to }), want);
    });
  }
  await t.step("no secretDelivery allows nothing", () => {
    assertEquals(
      deliveryAllowed({ spec: {} } as Pick<DBCluster, "spec">, {
        from: "team-a",
        to: "app-a",
      }),
      false,
    );
  });
});

Deno.test("deliveryNamespace: unset or the user's own namespace is no delivery", () => {
  assertEquals(deliveryNamespace(user), "app-a");
  const own = makeUser({ secret: { template: "raw", onConflict: "Fail", namespace: "team-a" } }, {
    namespace: "team-a",
  });
  assertEquals(deliveryNamespace(own), undefined);
  assertEquals(deliveryNamespace(makeUser()), undefined);
});

Deno.test("planDelivery", async (t) => {
  await t.step("allowed and absent: creates a labelled copy with the same data", () => {
    const [a] = planDelivery(input());
    assert(a?.kind === "write" && a.create);
    assertEquals(a.secret.metadata.namespace, "app-a");
    assertEquals(a.secret.metadata.labels?.[SOURCE_UID_LABEL], "uid-1");
    assertEquals(a.secret.metadata.annotations?.[SOURCE_ANNOTATION], "team-a/app");
    assertEquals(a.secret.metadata.ownerReferences, undefined);
    assertEquals(decodeData(a.secret).password, "s3cret");
    assert(isCopyOf(a.secret, user));
  });
  await t.step("perDatabase: one copy per Secret, each with its database", () => {
    const two = [
      { name: "app-shop-credentials", databaseResource: "shop", database: "shop" },
      { name: "app-ledger-credentials", databaseResource: "ledger", database: "ledger" },
    ];
    const out = planDelivery(input({ wanted: two }));
    assertEquals(
      out.map((a) =>
        a.kind === "write" ? `${a.secret.metadata.name}:${decodeData(a.secret).database}` : a.kind
      ),
      ["app-shop-credentials:shop", "app-ledger-credentials:ledger"],
    );
  });
  await t.step("an up-to-date copy: nothing", () => {
    const [first] = planDelivery(input());
    assert(first?.kind === "write");
    const existing = new Map([["app-credentials", first.secret]]);
    assertEquals(planDelivery(input({ existing, copies: [first.secret] })), []);
  });
  await t.step("not allowed: refused, and nothing written", () => {
    assertEquals(kinds(planDelivery(input({ allowed: false }))), [
      "refused:SecretDeliveryNotAllowed",
    ]);
  });
  await t.step("not allowed any more: the copy is deleted", () => {
    const copy = secret("app-a", copyLabels);
    const out = planDelivery(input({ allowed: false, copies: [copy] }));
    assertEquals(kinds(out), ["refused:SecretDeliveryNotAllowed", "delete"]);
  });
  await t.step("field removed: the copy is deleted, nothing refused", () => {
    const copy = secret("app-a", copyLabels);
    assertEquals(planDelivery(input({ to: undefined, copies: [copy] })), [
      { kind: "delete", namespace: "app-a", name: "app-credentials", uid: "s-1" },
    ]);
  });
  await t.step("moved to another namespace: new copy, old one deleted", () => {
    const copy = secret("app-old", copyLabels);
    assertEquals(kinds(planDelivery(input({ copies: [copy] }))), ["write", "delete"]);
  });
  await t.step("an unrelated Secret of that name: refused, never replaced", () => {
    const existing = new Map([["app-credentials", secret("app-a")]]);
    const out = planDelivery(input({ existing }));
    assertEquals(kinds(out), ["refused:SecretDeliveryConflict"]);
  });
  await t.step("another user's copy of that name: refused", () => {
    const other = { [SOURCE_UID_LABEL]: "uid-2", [SOURCE_NAMESPACE_LABEL]: "team-b" };
    const existing = new Map([["app-credentials", secret("app-a", other)]]);
    assertEquals(kinds(planDelivery(input({ existing }))), ["refused:SecretDeliveryConflict"]);
  });
  await t.step("a copy labelled with the uid but from another namespace is not ours", () => {
    const forged = secret("app-a", { ...copyLabels, [SOURCE_NAMESPACE_LABEL]: "team-b" });
    assertEquals(planDelivery(input({ to: undefined, copies: [forged] })), []);
  });
});

Deno.test("ownersOfSecret maps a copy to its source user by uid", () => {
  const copy = secret("app-a", copyLabels);
  assertEquals(ownersOfSecret(copy, [user, makeUser({}, { name: "other" })]), ["team-a/app"]);
});
