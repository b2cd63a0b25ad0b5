/**
 * Which informer events bring a DBCluster back: a change of the DBCluster itself, and any event
 * of a Secret it reads its credentials or CA from (so pools are rebuilt at once).
 */
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import type { KubeObject } from "../runtime/types.ts";
import { SecretResource } from "../runtime/kube.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import type { ClusterResolver } from "../services/resolver.ts";

/** The DBCluster controller's watches: its objects and their Secrets. */
export function dbclusterWatches(deps: ControllerDeps, resolver: ClusterResolver): Watches {
  const clusters = deps.informers.for<DBCluster>(DBClusterKind);
  // Metadata only: we need to know they changed, not what they hold.
  const secrets = deps.informers.for<KubeObject<unknown, unknown>>(SecretResource, {
    metadataOnly: true,
  });
  return (controller) => {
    controller.watch(clusters);
    controller.watch(secrets, (s) => {
      const ns = s.metadata.namespace;
      return ns ? resolver.clustersUsingSecret(ns, s.metadata.name) : [];
    });
  };
}
