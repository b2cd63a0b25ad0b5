/**
 * Whom a Secret belongs to, pure. `onConflict: Adopt|Merge` (and a PostgresDatabase's adopt
 * annotation) may take over a Secret nobody manages, never one that belongs to another dbtether
 * resource (an application Secret, a credentials record), to another controller, or that a
 * DBCluster or BackupStorage reads its credentials from.
 */
import type { KubeObject, ObjectMeta } from "../../crds/kind.ts";

/** How dbtether marks the Secrets it writes (the label is the Kubernetes recommended one). */
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY_VALUE = "dbtether";
export const MANAGED_BY_ANNOTATION = "dbtether.io/managed-by";

/** Marks a DatabaseUser's credentials record, so it is never taken for an application's Secret. */
export const STATE_LABEL = "dbtether.io/credentials-state";

/** API groups of dbtether's kinds (PostgresDatabase keeps pg-db-operator's group). */
const DBTETHER_GROUPS: ReadonlySet<string> = new Set([
  "dbtether.io",
  "experimental.bujarmurati.com",
]);

/** Names of the shape of a credentials record (`dbtether-<user>-state`), reserved for them. */
export function isStateSecretName(name: string): boolean {
  return /^dbtether-.+-state$/.test(name);
}

/**
 * Who else `secret` belongs to (for messages), or undefined when it is `self`'s or nobody's.
 * `self.name` is the DatabaseUser whose name legacy Secrets carry in dbtether.io/managed-by.
 */
export function otherOwner(
  secret: { metadata: ObjectMeta },
  self: { uid: string | undefined; name?: string },
): string | undefined {
  const meta = secret.metadata;
  const annotated = meta.annotations?.[MANAGED_BY_ANNOTATION];
  if (meta.labels?.[STATE_LABEL] === "true") {
    return `the credentials record of DatabaseUser ${JSON.stringify(annotated ?? "?")}`;
  }
  const refs = meta.ownerReferences ?? [];
  if (self.uid !== undefined && refs.some((r) => r.uid === self.uid)) return undefined;
  const other = refs.find((r) => r.controller || DBTETHER_GROUPS.has(r.apiVersion.split("/")[0]!));
  if (other) return `${other.kind} ${JSON.stringify(other.name)}`;
  if (annotated !== undefined && annotated !== self.name) {
    return `DatabaseUser ${JSON.stringify(annotated)}`;
  }
  if (annotated === undefined && meta.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE) {
    return "another dbtether resource";
  }
  return undefined;
}

/**
 * The objects of `kind` (DBCluster, BackupStorage: cluster-scoped) whose spec names the Secret
 * `namespace/name` in a field ending in `SecretRef` (credentials, CA, keys), as "Kind name".
 */
export function referencedBy(
  kind: string,
  objects: readonly KubeObject<unknown, unknown>[],
  ref: { namespace: string; name: string },
): string[] {
  return objects.filter((o) => refersTo(o.spec, ref)).map((o) =>
    `${kind} ${JSON.stringify(o.metadata.name)}`
  );
}

function refersTo(value: unknown, ref: { namespace: string; name: string }): boolean {
  if (typeof value !== "object" || value === null) return false;
  for (const [k, v] of Object.entries(value)) {
    if (k.endsWith("SecretRef") && typeof v === "object" && v !== null) {
      const r = v as { name?: unknown; namespace?: unknown };
      if (r.name === ref.name && r.namespace === ref.namespace) return true;
    }
    if (refersTo(v, ref)) return true;
  }
  return false;
}
