/**
 * Object helpers every reconciler uses: status writes through the /status subresource that
 * happen only when something changed and survive 409 conflicts, finalizers, ownerReferences.
 */
import type { KubeObject, OwnerReference } from "./types.ts";
import { jsonEqual } from "./conditions.ts";
import type { Clock } from "../../lib/clock.ts";
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

/** A status write: the object as reconciled, and the status computed from the latest copy. */
export interface StatusUpdate<O extends KubeObject<unknown, unknown>> {
  resource: Resource;
  /** The object exactly as the reconcile acted on it. */
  object: O;
  /** The next status from a view of the latest object; undefined writes nothing. */
  compute: (view: AsReconciled<O>) => O["status"] | undefined;
  signal?: AbortSignal | undefined;
}

/** Writes the status `compute` returns at `now` for a view of the latest `object`. */
export type StatusWriter<O extends KubeObject<unknown, unknown>> = (
  object: O,
  ctx: { signal?: AbortSignal | undefined },
  compute: (latest: AsReconciled<O>, now: number) => O["status"] | undefined,
) => Promise<boolean>;

/** The {@link updateStatus} of one kind, with the time of each attempt from `clock`. */
export function statusWriter<O extends KubeObject<unknown, unknown>>(
  deps: { client: KubeClient; clock: Clock },
  resource: Resource,
): StatusWriter<O> {
  return (object, ctx, compute) =>
    updateStatus(deps.client, {
      resource,
      object,
      compute: (l) => compute(l, deps.clock.now()),
      signal: ctx.signal,
    });
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
  o: StatusUpdate<O>,
): Promise<boolean> {
  const { resource: res, object: reconciled, compute } = o;
  const signal = o.signal ? { signal: o.signal } : {};
  const { namespace, name } = reconciled.metadata;
  let current = reconciled;
  for (let attempt = 0; attempt < 5; attempt++) {
    const next = compute(asReconciledView(reconciled, current));
    if (next === undefined || jsonEqual(next, current.status)) return false;
    try {
      await client.replaceStatus(res, {
        ...signal,
        namespace,
        name,
        body: {
          ...reconciled,
          // The status subresource ignores everything but the status; the write is guarded by
          // the resourceVersion of the object whose status `next` builds on.
          metadata: { ...reconciled.metadata, resourceVersion: current.metadata.resourceVersion },
          status: next,
        },
      });
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      if (!(e instanceof ConflictError)) throw e;
      current = await client.get<O>(res, { namespace, name, ...signal });
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

/** Which finalizer on which object. */
export interface FinalizerChange<O extends KubeObject<unknown, unknown>> {
  resource: Resource;
  object: O;
  finalizer: string;
  signal?: AbortSignal | undefined;
}

/** Adds `finalizer` (before the first external side effect); returns the patched object. */
export async function addFinalizer<O extends KubeObject<unknown, unknown>>(
  client: KubeClient,
  o: FinalizerChange<O>,
): Promise<O> {
  return await setFinalizer(client, o, true) as O;
}

/** Removes `finalizer` (once cleanup is done); a deleted object is not an error. */
export async function removeFinalizer<O extends KubeObject<unknown, unknown>>(
  client: KubeClient,
  o: FinalizerChange<O>,
): Promise<O> {
  return await setFinalizer(client, o, false) as O;
}

/**
 * Adds or removes a finalizer with a merge patch guarded by the object's resourceVersion, so a
 * concurrent change fails with a conflict instead of being overwritten.
 */
async function setFinalizer(
  client: KubeClient,
  o: FinalizerChange<KubeObject<unknown, unknown>>,
  present: boolean,
): Promise<KubeObject<unknown, unknown>> {
  const { resource: res, object: obj, finalizer: f } = o;
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
    return await client.patch(res, {
      ...(o.signal ? { signal: o.signal } : {}),
      namespace: obj.metadata.namespace,
      name: obj.metadata.name,
      body: patch,
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
