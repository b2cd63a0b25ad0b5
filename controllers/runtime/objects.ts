/**
 * Object helpers every reconciler uses: status writes through the /status subresource that
 * happen only when something changed and survive 409 conflicts, finalizers, ownerReferences.
 */
import type { KubeObject, OwnerReference } from "./types.ts";
import { jsonEqual } from "./conditions.ts";
import { ConflictError, NotFoundError } from "../../lib/errors.ts";
import { type KubeClient, MERGE_PATCH, type Resource } from "./kube.ts";

/**
 * What a status computation sees: the object exactly as the reconcile acted on it (its spec,
 * metadata and generation), carrying the status that is on the server now. Only
 * {@link updateStatus} builds one, from the object it was given and the one it re-read.
 */
export type AsReconciled<O extends KubeObject<unknown, unknown>> = O & {
  readonly [asReconciled]: true;
};
declare const asReconciled: unique symbol;

function asReconciledView<O extends KubeObject<unknown, unknown>>(
  reconciled: O,
  current: O,
): AsReconciled<O> {
  return { ...reconciled, status: current.status } as AsReconciled<O>;
}

/**
 * Writes `status` computed for `reconciled`, the object as the reconcile read it and acted on it.
 * `compute` returns the desired status, or undefined to write nothing. A 409 re-reads the object
 * and computes again (up to 5 times) — still for the reconciled spec and generation, with only
 * the status (and the resourceVersion the write is guarded by) taken from the re-read object: a
 * spec changed in between was not reconciled, so `observedGeneration` (of the status and of each
 * condition) must not claim it. Returns whether a write happened.
 */
export async function updateStatus<O extends KubeObject<unknown, unknown>>(
  client: KubeClient,
  res: Resource,
  reconciled: O,
  compute: (view: AsReconciled<O>) => O["status"] | undefined,
): Promise<boolean> {
  const { namespace, name } = reconciled.metadata;
  let current = reconciled;
  for (let attempt = 0; attempt < 5; attempt++) {
    const next = compute(asReconciledView(reconciled, current));
    if (next === undefined || jsonEqual(next, current.status)) return false;
    try {
      await client.replaceStatus(res, namespace, name, {
        ...reconciled,
        // The status subresource ignores everything but the status; the write is guarded by
        // the resourceVersion of the object whose status `next` builds on.
        metadata: { ...reconciled.metadata, resourceVersion: current.metadata.resourceVersion },
        status: next,
      });
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      if (!(e instanceof ConflictError)) throw e;
      current = await client.get<O>(res, namespace, name);
      if (current.metadata.uid !== reconciled.metadata.uid) return false;
    }
  }
  throw new ConflictError(
    `Cannot update status of ${res.kind} ${name}: conflicting writes persisted`,
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
