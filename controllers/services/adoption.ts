/**
 * The platform team's consent to adoption on a DBCluster (`spec.adoption.allowedNamespaces`),
 * read for one namespace. Unset grants no namespace. The namespace's labels are read only when
 * the grant has a selector.
 */
import type { DBCluster } from "../../crds/dbcluster.ts";
import type { KubeObject } from "../../crds/kind.ts";
import type { AdoptionConsent } from "../postgres/claims.ts";
import { type KubeClient, NamespaceResource } from "../runtime/kube.ts";
import { namespaceGranted } from "./namespaces.ts";

/** Whether resources of `namespace` may adopt existing databases and roles on `cluster`. */
export async function adoptionConsent(
  client: KubeClient,
  o: { cluster: DBCluster; namespace: string; signal?: AbortSignal },
): Promise<AdoptionConsent> {
  const grant = o.cluster.spec.adoption?.allowedNamespaces;
  let labels: Record<string, string> = {};
  if (grant?.selector) {
    const ns = await client.find<KubeObject<unknown, unknown>>(NamespaceResource, {
      name: o.namespace,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    labels = ns?.metadata.labels ?? {};
  }
  return {
    granted: namespaceGranted(grant, o.namespace, labels),
    how: `the platform team grants it by listing namespace ${
      JSON.stringify(o.namespace)
    } in spec.adoption.allowedNamespaces of DBCluster ${JSON.stringify(o.cluster.metadata.name)}`,
  };
}

/** Consent where no DBCluster is involved (PostgresDatabase through the libpq environment). */
export const NO_CLUSTER_CONSENT: AdoptionConsent = {
  granted: false,
  how: "adoption needs a DBCluster that allows it: run dbtether with " +
    "--postgresdatabase-cluster naming a DBCluster whose spec.adoption.allowedNamespaces " +
    "lists this namespace",
};
