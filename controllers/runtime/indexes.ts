/**
 * Index functions more than one kind uses on a shared informer ({@link InformerSet.withIndex}).
 * Each is one module-level function, so every controller that adds it adds the same index.
 */
import type { KubeObject } from "./types.ts";

/** Objects by the uid of each owner in their ownerReferences. */
export const OWNER_UID_INDEX = "ownerUid";

export function ownerUids(o: KubeObject<unknown, unknown>): string[] {
  return (o.metadata.ownerReferences ?? []).map((r) => r.uid).filter((u) => !!u);
}

/** Objects by their own uid. */
export const UID_INDEX = "uid";

export function ownUid(o: KubeObject<unknown, unknown>): string[] {
  return o.metadata.uid ? [o.metadata.uid] : [];
}

/** Namespaced objects by their namespace. */
export const NAMESPACE_INDEX = "namespace";

export function namespaceOf(o: KubeObject<unknown, unknown>): string[] {
  return o.metadata.namespace ? [o.metadata.namespace] : [];
}
