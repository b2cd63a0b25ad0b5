/**
 * Which namespaces may use a cluster-scoped resource (DBCluster, BackupStorage): names plus a
 * label selector; nothing set allows all. Pure.
 */

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    values?: string[];
  }[];
}

export interface AllowedNamespaces {
  names?: string[];
  selector?: LabelSelector;
}

/** metav1.LabelSelector semantics; an empty selector matches everything. */
export function selectorMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const val = labels[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case "In":
        if (!has || !values.includes(val!)) return false;
        break;
      case "NotIn":
        if (has && values.includes(val!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

/** Whether the allow-list needs the namespace's labels to decide. */
export function needsLabels(allowed: AllowedNamespaces | undefined): boolean {
  return !!allowed?.selector;
}

/**
 * Whether `namespace` may use the resource. With names and a selector, either may allow it;
 * with neither, everything is allowed.
 */
export function namespaceAllowed(
  allowed: AllowedNamespaces | undefined,
  namespace: string,
  labels: Record<string, string> = {},
): boolean {
  const names = allowed?.names ?? [];
  const sel = allowed?.selector;
  if (!names.length && !sel) return true;
  if (names.includes(namespace)) return true;
  return sel ? selectorMatches(sel, labels) : false;
}

/**
 * Whether a grant (crds/kind.ts namespaceGrantField) includes `namespace`. Unlike
 * {@link namespaceAllowed}, an unset or empty grant includes no namespace; an empty selector
 * (`selector: {}`) includes every namespace, as in Kubernetes.
 */
export function namespaceGranted(
  grant: AllowedNamespaces | undefined,
  namespace: string,
  labels: Record<string, string> = {},
): boolean {
  if (!grant) return false;
  if ((grant.names ?? []).includes(namespace)) return true;
  return grant.selector ? selectorMatches(grant.selector, labels) : false;
}
