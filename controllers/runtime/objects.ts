/**
 * Object helpers every reconciler uses: status writes through the /status subresource that
 * happen only when something changed and survive 409 conflicts, finalizers, ownerReferences.
 */
import type { KubeObject, OwnerReference } from "../../crds/kind.ts";
import { jsonEqual } from "./conditions.ts";
import { ConflictError, NotFoundError } from "./errors.ts";
import { type KubeClient, MERGE_PATCH, type Resource } from "./kube.ts";

/**
 * Writes `status` computed from the latest object. `compute` returns the desired status, or
 * undefined to write nothing. A 409 re-reads the object and computes again (up to 5 times).
 * Returns whether a write happened.
 */
export async function updateStatus<O extends KubeObject<unknown, unknown>>(
  client: KubeClient,
  res: Resource,
  obj: O,
  compute: (latest: O) => O["status"] | undefined,
): Promise<boolean> {
  let latest = obj;
  for (let attempt = 0; attempt < 5; attempt++) {
    const next = compute(latest);
    if (next === undefined || jsonEqual(next, latest.status)) return false;
    try {
      await client.replaceStatus(res, latest.metadata.namespace, latest.metadata.name, {
        ...latest,
        status: next,
      });
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      if (!(e instanceof ConflictError)) throw e;
      latest = await client.get<O>(
        res,
        latest.metadata.namespace,
        latest.metadata.name,
      );
    }
  }
  throw new ConflictError(
    `Cannot update status of ${res.kind} ${latest.metadata.name}: conflicting writes persisted`,
  );
}

export function hasFinalizer(obj: KubeObject<unknown, unknown>, f: string): boolean {
  return obj.metadata.finalizers?.includes(f) ?? false;
}

/**
 * Adds or removes a finalizer with a JSON patch guarded by a `test` of the current list, so a
 * concurrent change fails with a conflict instead of being overwritten.
 */
export async function setFinalizer(
  client: KubeClient,
  res: Resource,
  obj: KubeObject<unknown, unknown>,
  f: string,
  present: boolean,
): Promise<KubeObject<unknown, unknown>> {
  const current = obj.metadata.finalizers ?? [];
  if (current.includes(f) === present) return obj;
  const next = present ? [...current, f] : current.filter((x) => x !== f);
  const patch = {
    metadata: {
      finalizers: next.length ? next : null,
      resourceVersion: obj.metadata.resourceVersion,
    },
  };
  try {
    return await client.patch(res, obj.metadata.namespace, obj.metadata.name, patch, {
      contentType: MERGE_PATCH,
    });
  } catch (e) {
    if (e instanceof NotFoundError && !present) return obj;
    throw e;
  }
}

/** An ownerReference marking `owner` as the controller of a dependent object. */
export function ownerRef(owner: KubeObject<unknown, unknown>): OwnerReference {
  if (!owner.metadata.uid) {
    throw new Error(`Cannot reference ${owner.kind} ${owner.metadata.name}: it has no uid`);
  }
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Whether `obj` is controlled by `owner` (same uid). */
export function isOwnedBy(
  obj: KubeObject<unknown, unknown>,
  owner: KubeObject<unknown, unknown>,
): boolean {
  return (obj.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid);
}

/** RFC 3339 without fractions, as Kubernetes writes timestamps. */
export function k8sTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
