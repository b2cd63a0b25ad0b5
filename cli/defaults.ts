/**
 * The defaults of a CRD's structural schema applied to an object, as the apiserver does on
 * create: a missing property with a `default` gets a copy of it, and defaulting continues
 * inside it (so `default: {}` fills the object's own defaults). `dbtether plan` reads manifests
 * that were never sent to the apiserver, and the planners expect defaulted specs. Pure.
 */

type Schema = {
  default?: unknown;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
};

/** `value` with the defaults of `schema` applied (a copy; `value` is not changed). */
export function withDefaults<T>(schema: unknown, value: T): T {
  return fill(schema as Schema, structuredClone(value)) as T;
}

function fill(schema: Schema, value: unknown): unknown {
  if (Array.isArray(value)) return schema.items ? value.map((v) => fill(schema.items!, v)) : value;
  if (typeof value !== "object" || value === null) return value;
  const o = value as Record<string, unknown>;
  for (const [k, s] of Object.entries(schema.properties ?? {})) {
    if (o[k] === undefined && s.default !== undefined) o[k] = structuredClone(s.default);
    if (o[k] !== undefined) o[k] = fill(s, o[k]);
  }
  const extra = schema.additionalProperties;
  if (typeof extra === "object" && !schema.properties) {
    for (const k of Object.keys(o)) o[k] = fill(extra, o[k]);
  }
  return o;
}

/** The openAPIV3Schema of a CRD object (as crds/kind.ts builds it). */
export function crdSchema(crd: Record<string, unknown>): unknown {
  const spec = crd.spec as { versions: { schema: { openAPIV3Schema: unknown } }[] };
  return spec.versions[0]!.schema.openAPIV3Schema;
}
