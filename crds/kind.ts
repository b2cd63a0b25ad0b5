/**
 * What every kind shares: object metadata, standard conditions, and `defineKind`, which turns
 * one declaration into a CustomResourceDefinition and a resource descriptor for the runtime.
 */
import {
  arr,
  type Common,
  enumOf,
  int,
  type JsonSchema,
  obj,
  optional,
  record,
  type Schema,
  str,
  withDefault,
} from "./schema.ts";
import type { ResourceKind } from "../controllers/runtime/types.ts";
import {
  MAX_IDENTIFIER_BYTES,
  RESERVED_NAMES,
  RESERVED_PREFIXES,
} from "../controllers/postgres/limits.ts";

/** The object shapes live in the runtime; the kinds re-export them for their own modules. */
export type {
  Condition,
  KubeObject,
  ObjectMeta,
  ObjectOf,
  OwnerReference,
  ResourceKind,
} from "../controllers/runtime/types.ts";

/** metav1.Condition. */
export const conditionSchema = obj({
  type: str({ description: "Type of the condition, e.g. Ready.", maxLength: 316 }),
  status: enumOf(["True", "False", "Unknown"] as const),
  reason: str({ description: "CamelCase reason for the last transition.", maxLength: 1024 }),
  message: str({ description: "Human-readable detail.", maxLength: 32768 }),
  observedGeneration: optional(int({ minimum: 0 })),
  lastTransitionTime: str({ format: "date-time" }),
});

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
  /**
   * CEL rules on the whole object. Only these can see `self.metadata.name`, so they check the
   * defaults derived from the name (a database or role name taken from `metadata.name`).
   */
  rules?: { rule: string; message: string }[];
}

export interface KindDefinition<Spec, Status> extends ResourceKind<Spec, Status> {
  crd: Record<string, unknown>;
}

/** Declares a kind: its CRD manifest and its runtime descriptor come from the same place. */
export function defineKind<Spec, Status>(
  o: KindOptions<Spec, Status>,
): KindDefinition<Spec, Status> {
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
  if (o.rules?.length) schema["x-kubernetes-validations"] = o.rules;
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

// ---------------------------------------------------------------------------------------------
// Fields several kinds share.

/**
 * CEL rules that a PostgreSQL identifier given by the CEL expression `expr` must pass: at most
 * 63 bytes (PostgreSQL would silently truncate, so two names could collide) and not reserved.
 * `what` names the field in the messages.
 */
export function identifierRules(expr: string, what: string): { rule: string; message: string }[] {
  const names = RESERVED_NAMES.map((n) => `'${n}'`).join(", ");
  const prefixes = RESERVED_PREFIXES.map((p) => `${expr}.lowerAscii().startsWith('${p}')`);
  return [
    {
      rule: `size(bytes(${expr})) <= ${MAX_IDENTIFIER_BYTES}`,
      message: `${what} must be at most ${MAX_IDENTIFIER_BYTES} bytes in UTF-8: ` +
        `PostgreSQL truncates longer identifiers`,
    },
    {
      rule: `!(${expr}.lowerAscii() in [${names}])`,
      message: `${what} must not be a reserved name (${RESERVED_NAMES.join(", ")}): ` +
        `PostgreSQL or the managed service reserves it`,
    },
    {
      rule: `!(${prefixes.join(" || ")})`,
      message: `${what} must not start with pg_ or rds_: ` +
        `PostgreSQL reserves pg_ and Amazon RDS reserves rds_ for their own roles`,
    },
  ];
}

/**
 * A PostgreSQL identifier (database or role name), kept exactly as written: any characters but
 * NUL, at most 63 bytes, not reserved. `maxLength` (characters) bounds the CEL cost; the byte
 * limit is the rule.
 */
export function pgIdentifier(what: string, c: Common = {}): Schema<string> {
  return str({
    minLength: 1,
    maxLength: MAX_IDENTIFIER_BYTES,
    pattern: "^[^\\x00]+$",
    ...c,
    rules: [...identifierRules("self", what), ...(c.rules ?? [])],
  });
}

/** A Go duration such as `90s`, `15m` or `1h30m`. */
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/** A duration field (Go syntax, as Kubernetes uses everywhere). */
export function duration(c: Common = {}): Schema<string> {
  return str({ pattern: DURATION_PATTERN, maxLength: 64, ...c });
}

/** A Kubernetes object name (DNS subdomain). */
export function objectName(c: Common = {}): Schema<string> {
  return str({
    minLength: 1,
    maxLength: 253,
    pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ...c,
  });
}

/** A namespace name (DNS label). */
export function namespaceName(c: Common = {}): Schema<string> {
  return str({ minLength: 1, maxLength: 63, pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", ...c });
}

/** `{name}`: a reference to an object in the referrer's namespace. */
export function localRef(description: string, nameDescription = "Name of the object.") {
  return obj({ name: objectName({ description: nameDescription }) }, { description });
}

/** `{name, namespace}`: a reference to a namespaced object from a cluster-scoped one. */
export function secretRef(description: string) {
  return obj({
    name: objectName({ description: "Name of the Secret." }),
    namespace: namespaceName({ description: "Namespace of the Secret." }),
  }, { description });
}

/** metav1.LabelSelector. */
export const labelSelectorSchema = obj({
  matchLabels: optional(record(str({ maxLength: 63 }), {
    description: "Labels that must all match exactly.",
  })),
  matchExpressions: optional(arr(
    obj({
      key: str({ minLength: 1, maxLength: 317, description: "Label key." }),
      operator: enumOf(["In", "NotIn", "Exists", "DoesNotExist"] as const, {
        description: "How the key relates to the values.",
      }),
      values: optional(arr(str({ maxLength: 63 }), {
        maxItems: 64,
        description: "Values for In and NotIn; empty for Exists and DoesNotExist.",
      })),
    }),
    { maxItems: 32, description: "Set-based requirements; all must match." },
  )),
}, { description: "A label selector; an empty selector matches everything." });

// Namespaces by name plus a label selector: the shape of both allow-lists and grants.
function namespaceSet(o: { byName: string; description: string }) {
  return optional(obj({
    names: optional(arr(namespaceName(), {
      maxItems: 256,
      listType: "set",
      description: o.byName,
    })),
    selector: optional(labelSelectorSchema),
  }, { description: o.description }));
}

/** Which namespaces may use a cluster-scoped resource: names and/or a selector; empty = all. */
export function allowedNamespacesField(what: string) {
  return namespaceSet({
    byName: "Namespaces allowed by name.",
    description: `Namespaces whose resources may use this ${what}: those listed in names plus ` +
      "those matching selector. Unset or empty allows every namespace.",
  });
}

/**
 * A grant of something risky to namespaces (adoption, cross-namespace restores): the same shape
 * as {@link allowedNamespacesField}, but unset or empty grants it to no namespace.
 */
export function namespaceGrantField(description: string) {
  return namespaceSet({
    byName: "Namespaces granted by name.",
    description: `${description} Namespaces listed in names plus those matching selector; ` +
      "unset or empty grants no namespace.",
  });
}

/** `observedGeneration` and `message`, which every status carries. */
export const observedGenerationField = optional(int({
  minimum: 0,
  description: "The metadata.generation this status describes.",
}));

/** What dbtether may do to the server objects of a resource (docs/design/pause_and_observe.md). */
export const MANAGEMENT_POLICIES = ["Manage", "Observe"] as const;
/** A value of spec.managementPolicy. */
export type ManagementPolicy = typeof MANAGEMENT_POLICIES[number];

/** spec.managementPolicy of the kinds that can adopt what exists (Database, DatabaseUser). */
export function managementPolicyField(what: string) {
  // Defaulted by the apiserver, optional in the type: objects written before the field existed
  // (and fixtures) have none, which means Manage.
  return optional(withDefault(
    enumOf(MANAGEMENT_POLICIES, {
      description: `Manage (the default) converges the ${what} to this spec. Observe only ` +
        "reads it and reports in the InSync condition what differs (the statements Manage " +
        "would run); it changes nothing on the server or in Secrets, adds no finalizer and " +
        "drops nothing on deletion. Switching to Manage applies the spec.",
    }),
    "Manage" as ManagementPolicy,
  ));
}

/** The summary message every status carries. */
export const messageField = optional(str({
  maxLength: 32768,
  description: "Human-readable summary of the current state; on failure, what failed and why.",
}));

/** An RFC 3339 timestamp. */
export function timestamp(description: string) {
  return optional(str({ format: "date-time", description }));
}
