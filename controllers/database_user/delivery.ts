/**
 * Cross-namespace delivery of a DatabaseUser's Secrets (spec.secret.namespace), pure: whether
 * the DBCluster's allow-list permits the pair source namespace -> target namespace, and what to
 * do with the copies — write the wanted ones, delete the ones no longer wanted or permitted,
 * refuse a name taken by any Secret that is not already this user's copy.
 *
 * Copies cannot carry an ownerReference (Kubernetes forbids cross-namespace owners): they are
 * found by the label {@link SOURCE_UID_LABEL}, and the user's finalizer deletes them. Only the
 * DBCluster (cluster-scoped, the platform team's) can permit a pair: a Database lives in the
 * tenant's namespace, so a permission there would be a tenant granting itself another namespace.
 */
import type { DatabaseUser } from "../../crds/database_user.ts";
import type { DBCluster } from "../../crds/dbcluster.ts";
import { otherOwner } from "../services/secret_owner.ts";
import {
  type Connection,
  DATABASE_ANNOTATION,
  decodeData,
  encodeData,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  renderData,
  type Secret,
} from "./secret.ts";
import type { SecretTarget } from "./secret_plan.ts";

/** The uid of the DatabaseUser a delivered copy comes from. */
export const SOURCE_UID_LABEL = "dbtether.io/source-uid";
/** Its namespace (a label, so a copy's origin shows in `kubectl get secret -L`). */
export const SOURCE_NAMESPACE_LABEL = "dbtether.io/source-namespace";
/** `<namespace>/<name>` of that DatabaseUser (names may be longer than a label value). */
export const SOURCE_ANNOTATION = "dbtether.io/delivered-from";

/** Why a delivery is refused, declared once (status.ts lists them as Ready reasons). */
export type DeliveryRefusal = "SecretDeliveryNotAllowed" | "SecretDeliveryConflict";

/** The namespace a user's Secrets are delivered to; undefined when none (or its own). */
export function deliveryNamespace(user: DatabaseUser): string | undefined {
  const to = user.spec.secret.namespace;
  return to === undefined || to === (user.metadata.namespace ?? "default") ? undefined : to;
}

/** Whether the DBCluster's spec.secretDelivery permits `from` -> `to`. */
export function deliveryAllowed(
  cluster: Pick<DBCluster, "spec">,
  pair: { from: string; to: string },
): boolean {
  return (cluster.spec.secretDelivery?.allow ?? []).some((a) =>
    a.sourceNamespace === pair.from && a.targetNamespaces.includes(pair.to)
  );
}

/** Whether `s` is a copy delivered from `user` (by its uid and namespace labels). */
export function isCopyOf(s: Pick<Secret, "metadata">, user: DatabaseUser): boolean {
  const labels = s.metadata.labels ?? {};
  return user.metadata.uid !== undefined && labels[SOURCE_UID_LABEL] === user.metadata.uid &&
    labels[SOURCE_NAMESPACE_LABEL] === (user.metadata.namespace ?? "default");
}

/** What {@link planDelivery} needs. */
export interface DeliveryInput {
  user: DatabaseUser;
  wanted: readonly SecretTarget[];
  conn: Omit<Connection, "database">;
  /** The target namespace ({@link deliveryNamespace}); undefined: no delivery wanted. */
  to: string | undefined;
  allowed: boolean;
  /** Secrets of the wanted names in the target namespace (read only when allowed), by name. */
  existing: ReadonlyMap<string, Secret>;
  /** Every copy of this user, in any namespace ({@link isCopyOf}). */
  copies: readonly Secret[];
}

/** A copy to write or delete, or why the delivery is refused. */
export type DeliveryAction =
  | { kind: "write"; secret: Secret; create: boolean }
  | { kind: "delete"; namespace: string; name: string; uid: string }
  | { kind: "refused"; reason: DeliveryRefusal; message: string };

/** Plans the copies: writes for the wanted ones that differ, deletes for the rest. */
export function planDelivery(i: DeliveryInput): DeliveryAction[] {
  const out: DeliveryAction[] = [];
  const from = i.user.metadata.namespace ?? "default";
  const keep = new Set<string>();
  if (i.to !== undefined && !i.allowed) {
    out.push({
      kind: "refused",
      reason: "SecretDeliveryNotAllowed",
      message: `Cannot deliver Secrets to namespace ${JSON.stringify(i.to)}: the DBCluster's ` +
        `spec.secretDelivery does not allow namespace ${JSON.stringify(from)} to deliver there ` +
        `(ask the platform team, or unset spec.secret.namespace)`,
    });
  } else if (i.to !== undefined) {
    for (const w of i.wanted) {
      const a = planCopy(i, w, i.to);
      if (a.kind !== "refused") keep.add(`${i.to}/${w.name}`);
      if (a.kind !== "unchanged") out.push(a);
    }
  }
  for (const c of i.copies) {
    const { namespace, name, uid } = c.metadata;
    if (!namespace || !uid || keep.has(`${namespace}/${name}`) || !isCopyOf(c, i.user)) continue;
    out.push({ kind: "delete", namespace, name, uid });
  }
  return out;
}

function planCopy(
  i: DeliveryInput,
  w: SecretTarget,
  to: string,
): DeliveryAction | { kind: "unchanged" } {
  const existing = i.existing.get(w.name);
  if (existing && !isCopyOf(existing, i.user)) {
    const owner = otherOwner(existing, { uid: undefined }) ?? "nobody dbtether knows of";
    return {
      kind: "refused",
      reason: "SecretDeliveryConflict",
      message: `Cannot deliver Secret ${JSON.stringify(w.name)} to namespace ` +
        `${JSON.stringify(to)}: a Secret of that name exists there (it belongs to ${owner}); ` +
        "a delivered copy never replaces an existing Secret, whatever spec.secret.onConflict " +
        "says (delete it there, or choose another spec.secret.name)",
    };
  }
  const secret = copySecret(i, w, { to, existing });
  if (!secret) return { kind: "unchanged" };
  return { kind: "write", secret, create: existing === undefined };
}

/** The copy as it should be, or undefined when `existing` already says exactly that. */
function copySecret(
  i: DeliveryInput,
  w: SecretTarget,
  o: { to: string; existing: Secret | undefined },
): Secret | undefined {
  const { user } = i;
  const data = renderData({ ...i.conn, database: w.database }, user.spec.secret);
  const labels = {
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    [SOURCE_UID_LABEL]: user.metadata.uid!,
    [SOURCE_NAMESPACE_LABEL]: user.metadata.namespace ?? "default",
  };
  const annotations = {
    [SOURCE_ANNOTATION]: `${user.metadata.namespace ?? "default"}/${user.metadata.name}`,
    [DATABASE_ANNOTATION]: w.databaseResource,
  };
  const e = o.existing;
  if (
    e && same(decodeData(e), data) && same(e.metadata.labels ?? {}, labels) &&
    same(e.metadata.annotations ?? {}, annotations)
  ) {
    return undefined;
  }
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: w.name,
      namespace: o.to,
      ...(e?.metadata.resourceVersion ? { resourceVersion: e.metadata.resourceVersion } : {}),
      labels,
      annotations,
    },
    spec: undefined,
    type: "Opaque",
    data: encodeData(data),
  };
}

function same(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
