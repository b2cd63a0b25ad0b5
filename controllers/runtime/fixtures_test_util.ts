/** A Secret's metadata as the metadata-only informer holds it, for unit tests and benches. */
import type { KubeObject } from "./types.ts";

export function secretMeta(
  name: string,
  o: {
    namespace?: string;
    resourceVersion?: string;
    owners?: string[];
    labels?: Record<string, string>;
  } = {},
): KubeObject<unknown, unknown> {
  return {
    apiVersion: "v1",
    kind: "Secret",
    spec: undefined,
    metadata: {
      name,
      namespace: o.namespace ?? "ns",
      resourceVersion: o.resourceVersion ?? "1",
      ...(o.owners?.length
        ? {
          ownerReferences: o.owners.map((uid) => ({
            apiVersion: "dbtether.io/v1alpha1",
            kind: "DatabaseUser",
            name: uid,
            uid,
          })),
        }
        : {}),
      ...(o.labels ? { labels: o.labels } : {}),
    },
  };
}
