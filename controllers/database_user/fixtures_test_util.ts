/** A DatabaseUser for unit tests, with the defaults the apiserver would apply. */
import type { Database } from "../../crds/database.ts";
import type { DatabaseUser, DatabaseUserSpec } from "../../crds/database_user.ts";

export function makeUser(
  spec: Partial<DatabaseUserSpec> & Record<string, unknown> = {},
  meta: { name?: string; namespace?: string; annotations?: Record<string, string> } = {},
): DatabaseUser {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "DatabaseUser",
    metadata: {
      name: meta.name ?? "my-app-readonly",
      namespace: meta.namespace ?? "default",
      uid: "uid-1",
      generation: 1,
      ...(meta.annotations ? { annotations: meta.annotations } : {}),
    },
    spec: {
      privileges: "readonly",
      password: { length: 16 },
      connectionLimit: -1,
      deletionPolicy: "Delete",
      secret: { template: "raw", onConflict: "Fail" },
      secretGeneration: "primary",
      ...(spec.databaseRef || spec.database || spec.databases
        ? {}
        : { databaseRef: { name: "my-app-db" } }),
      ...spec,
    } as DatabaseUserSpec,
  };
}

/** A Database on DBCluster `c` (or `o.cluster`), Ready unless `o.ready` is false. */
export function makeDatabase(
  name: string,
  o: { ns?: string; ready?: boolean; allowed?: string[]; cluster?: string } = {},
): Database {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Database",
    metadata: { name, namespace: o.ns ?? "default" },
    spec: {
      clusterRef: { name: o.cluster ?? "c" },
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
