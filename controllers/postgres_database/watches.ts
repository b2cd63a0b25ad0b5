/**
 * Which informer events bring a PostgresDatabase back: a change of the object itself, and a
 * deleted or edited Secret it owns (so a removed Secret is written again).
 */
import { type PostgresDatabase, PostgresDatabaseKind } from "../../crds/postgres_database.ts";
import type { KubeObject } from "../runtime/types.ts";
import { SecretResource } from "../runtime/kube.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";

/** Keys of the PostgresDatabases that own `secret`. */
export function ownersOfSecret(secret: KubeObject<unknown, unknown>): string[] {
  const ns = secret.metadata.namespace;
  return (secret.metadata.ownerReferences ?? [])
    .filter((r) =>
      r.kind === PostgresDatabaseKind.kind && r.apiVersion === PostgresDatabaseKind.apiVersion
    )
    .map((r) => `${ns}/${r.name}`);
}

/** The PostgresDatabase controller's watches: its objects and the Secrets they own. */
export function postgresDatabaseWatches(deps: ControllerDeps): Watches {
  const objects = deps.informers.for<PostgresDatabase>(PostgresDatabaseKind);
  // Metadata only: a change is all that matters, not what the Secret holds.
  const secrets = deps.informers.for<KubeObject<unknown, unknown>>(SecretResource, {
    metadataOnly: true,
  });
  return (controller) => {
    controller.watch(objects);
    controller.resync(objects);
    controller.watch(secrets, (s, old, deleted) => {
      if (!deleted && old && s.metadata.resourceVersion === old.metadata.resourceVersion) {
        return [];
      }
      return ownersOfSecret(s);
    });
  };
}
