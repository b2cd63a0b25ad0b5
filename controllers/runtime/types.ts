/**
 * The Kubernetes object shapes the runtime works with (metadata, conditions, the descriptor of a
 * kind). The schemas of our kinds (`crds/`) build on these; the runtime never imports `crds/`.
 */

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

/** A Kubernetes object as read from the apiserver. */
export interface KubeObject<Spec = unknown, Status = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

/** metav1.Condition. */
export type Condition = {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
};

/** Everything the runtime needs to address a kind over the API. */
export interface ResourceKind<Spec = unknown, Status = unknown> {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  apiVersion: string;
  /** Phantom: the object type. */
  readonly __object?: KubeObject<Spec, Status>;
}

/** The object type of a kind. */
export type ObjectOf<K> = K extends ResourceKind<infer S, infer T> ? KubeObject<S, T> : never;
