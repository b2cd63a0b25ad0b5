/**
 * What every kind shares: object metadata, standard conditions, and `defineKind`, which turns
 * one declaration into a CustomResourceDefinition and a resource descriptor for the runtime.
 */
import { arr, enumOf, int, type JsonSchema, obj, optional, type Schema, str } from "./schema.ts";

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
export const conditionSchema = obj({
  type: str({ description: "Type of the condition, e.g. Ready.", maxLength: 316 }),
  status: enumOf(["True", "False", "Unknown"] as const),
  reason: str({ description: "CamelCase reason for the last transition.", maxLength: 1024 }),
  message: str({ description: "Human-readable detail.", maxLength: 32768 }),
  observedGeneration: optional(int({ minimum: 0 })),
  lastTransitionTime: str({ format: "date-time" }),
});
export type Condition = {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
};

/** The conditions list every status carries, keyed by type. */
export const conditionsField = optional(
  arr(conditionSchema, { description: "Standard conditions; Ready summarises the others." }),
);
(conditionsField.json as JsonSchema)["x-kubernetes-list-type"] = "map";
(conditionsField.json as JsonSchema)["x-kubernetes-list-map-keys"] = ["type"];

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface KindOptions<Spec, Status> {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular?: string;
  shortNames?: string[];
  categories?: string[];
  scope: "Namespaced" | "Cluster";
  description: string;
  spec: Schema<Spec, boolean>;
  status: Schema<Status, boolean>;
  printerColumns: PrinterColumn[];
}

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

export interface KindDefinition<Spec, Status> extends ResourceKind<Spec, Status> {
  crd: Record<string, unknown>;
}

/** Declares a kind: its CRD manifest and its runtime descriptor come from the same place. */
export function defineKind<Spec, Status>(o: KindOptions<Spec, Status>): KindDefinition<Spec, Status> {
  const schema: JsonSchema = {
    type: "object",
    description: o.description,
    properties: {
      apiVersion: { type: "string" },
      kind: { type: "string" },
      metadata: { type: "object" },
      spec: o.spec.json,
      status: o.status.json,
    },
  };
  if (!o.spec.optional) schema.required = ["spec"];
  const names: Record<string, unknown> = {
    kind: o.kind,
    listKind: `${o.kind}List`,
    plural: o.plural,
    singular: o.singular ?? o.kind.toLowerCase(),
  };
  if (o.shortNames?.length) names.shortNames = o.shortNames;
  if (o.categories?.length) names.categories = o.categories;
  const crd = {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${o.plural}.${o.group}`,
      labels: { "app.kubernetes.io/name": "dbtether", "app.kubernetes.io/part-of": "dbtether" },
    },
    spec: {
      group: o.group,
      names,
      scope: o.scope,
      versions: [{
        name: o.version,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: o.printerColumns,
        schema: { openAPIV3Schema: schema },
      }],
    },
  };
  return {
    group: o.group,
    version: o.version,
    kind: o.kind,
    plural: o.plural,
    namespaced: o.scope === "Namespaced",
    apiVersion: `${o.group}/${o.version}`,
    crd,
  };
}

export const GROUP = "dbtether.io";
export const VERSION = "v1alpha1";

/** The AGE column every kubectl listing ends with. */
export const ageColumn: PrinterColumn = {
  name: "Age",
  type: "date",
  jsonPath: ".metadata.creationTimestamp",
};
