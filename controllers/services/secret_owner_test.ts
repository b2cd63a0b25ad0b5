import { assertEquals } from "../../tests/helpers/assert.ts";
import type { ObjectMeta } from "../../crds/kind.ts";
import { isStateSecretName, otherOwner, referencedBy } from "./secret_owner.ts";

const ref = (
  o: { kind: string; name: string; uid: string; apiVersion?: string; controller?: boolean },
) => ({
  apiVersion: o.apiVersion ?? "dbtether.io/v1alpha1",
  kind: o.kind,
  name: o.name,
  uid: o.uid,
  ...(o.controller ? { controller: true } : {}),
});

Deno.test("otherOwner names who else owns a Secret; nothing when nobody or we do", async (t) => {
  const self = { uid: "me", name: "evil" };
  const table: [string, Partial<ObjectMeta>, string | undefined][] = [
    ["nobody's Secret", {}, undefined],
    ["ours by ownerReference", {
      ownerReferences: [ref({ kind: "DatabaseUser", name: "evil", uid: "me" })],
    }, undefined],
    ["another DatabaseUser's", {
      ownerReferences: [ref({ kind: "DatabaseUser", name: "victim", uid: "v" })],
    }, 'DatabaseUser "victim"'],
    ["a PostgresDatabase's", {
      ownerReferences: [
        ref({
          kind: "PostgresDatabase",
          name: "p",
          uid: "p",
          apiVersion: "experimental.bujarmurati.com/v1",
        }),
      ],
    }, 'PostgresDatabase "p"'],
    ["another controller's", {
      ownerReferences: [
        ref({
          kind: "Certificate",
          name: "c",
          uid: "c",
          apiVersion: "cert-manager.io/v1",
          controller: true,
        }),
      ],
    }, 'Certificate "c"'],
    ["a plain non-controller reference", {
      ownerReferences: [ref({ kind: "ConfigMap", name: "c", uid: "c", apiVersion: "v1" })],
    }, undefined],
    ["a credentials record, even our own", {
      labels: { "dbtether.io/credentials-state": "true" },
      annotations: { "dbtether.io/managed-by": "evil" },
      ownerReferences: [ref({ kind: "DatabaseUser", name: "evil", uid: "me" })],
    }, 'the credentials record of DatabaseUser "evil"'],
    ["a legacy Secret of another user", {
      labels: { "app.kubernetes.io/managed-by": "dbtether" },
      annotations: { "dbtether.io/managed-by": "victim" },
    }, 'DatabaseUser "victim"'],
    ["a legacy Secret of ours", {
      labels: { "app.kubernetes.io/managed-by": "dbtether" },
      annotations: { "dbtether.io/managed-by": "evil" },
    }, undefined],
    ["labelled dbtether without an owner", {
      labels: { "app.kubernetes.io/managed-by": "dbtether" },
    }, "another dbtether resource"],
  ];
  for (const [name, meta, want] of table) {
    await t.step(
      name,
      () => assertEquals(otherOwner({ metadata: { name: "s", ...meta } }, self), want),
    );
  }
});

/** A cluster-scoped object with `spec`, as referencedBy reads it. */
function clusterObject(name: string, spec: Record<string, unknown>) {
  return { apiVersion: "x", kind: "", metadata: { name }, spec };
}

Deno.test("referencedBy finds every *SecretRef of cluster-scoped resources", () => {
  const objects = [
    clusterObject("main", { credentialsSecretRef: { name: "admin", namespace: "team" } }),
    clusterObject("ca", { caSecretRef: { name: "admin", namespace: "team", key: "ca.crt" } }),
    clusterObject("other", { credentialsSecretRef: { name: "admin", namespace: "elsewhere" } }),
    clusterObject("nested", { signing: { keySecretRef: { name: "admin", namespace: "team" } } }),
  ];
  assertEquals(referencedBy("DBCluster", objects, { namespace: "team", name: "admin" }), [
    'DBCluster "main"',
    'DBCluster "ca"',
    'DBCluster "nested"',
  ]);
});

Deno.test("isStateSecretName: dbtether-<name>-state only", () => {
  for (const n of ["dbtether-x-state", "dbtether-a-b-1234567890-state"]) {
    assertEquals(isStateSecretName(n), true);
  }
  for (const n of ["dbtether-state", "x-credentials", "dbtether-x-state-2"]) {
    assertEquals(isStateSecretName(n), false);
  }
});
