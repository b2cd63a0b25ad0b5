/**
 * Structural validation of objects against a kind's OpenAPI schema, the way the apiserver does
 * it before CEL: types, required fields, unknown fields (kubectl's strict field validation),
 * enums, patterns, numeric and length bounds, set uniqueness; and structural defaulting.
 * CEL rules (x-kubernetes-validations) are not evaluated here: the admission tests against the
 * real apiserver cover those.
 */
import type { JsonSchema } from "./schema.ts";
import type { KindDefinition } from "./kind.ts";

/** One validation failure: the field path (as kubectl prints it) and what is wrong. */
export interface FieldError {
  path: string;
  message: string;
}

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function checkType(s: JsonSchema, v: unknown): string | undefined {
  if (v === null) return s.nullable ? undefined : "must not be null";
  if (s["x-kubernetes-int-or-string"]) {
    const t = typeOf(v);
    return t === "integer" || t === "string" ? undefined : `must be an integer or a string`;
  }
  if (!s.type) return undefined;
  const t = typeOf(v);
  if (t === s.type || (s.type === "number" && t === "integer")) return undefined;
  return `must be of type ${s.type}, not ${t}`;
}

function checkString(s: JsonSchema, v: string, path: string, out: FieldError[]): void {
  // OpenAPI lengths count characters (code points), as the apiserver does.
  const length = [...v].length;
  if (s.minLength !== undefined && length < s.minLength) {
    out.push({ path, message: `must be at least ${s.minLength} characters` });
  }
  if (s.maxLength !== undefined && length > s.maxLength) {
    out.push({ path, message: `must be at most ${s.maxLength} characters` });
  }
  if (s.pattern !== undefined && !new RegExp(s.pattern, "u").test(v)) {
    out.push({ path, message: `must match the pattern ${s.pattern}` });
  }
  if (s.format === "date-time" && Number.isNaN(Date.parse(v))) {
    out.push({ path, message: "must be an RFC 3339 date-time" });
  }
}

function checkNumber(s: JsonSchema, v: number, path: string, out: FieldError[]): void {
  if (s.minimum !== undefined && v < s.minimum) {
    out.push({ path, message: `must be greater than or equal to ${s.minimum}` });
  }
  if (s.maximum !== undefined && v > s.maximum) {
    out.push({ path, message: `must be less than or equal to ${s.maximum}` });
  }
}

function checkArray(s: JsonSchema, v: unknown[], path: string, out: FieldError[]): void {
  if (s.minItems !== undefined && v.length < s.minItems) {
    out.push({ path, message: `must have at least ${s.minItems} items` });
  }
  if (s.maxItems !== undefined && v.length > s.maxItems) {
    out.push({ path, message: `must have at most ${s.maxItems} items` });
  }
  if (s["x-kubernetes-list-type"] === "set") {
    const seen = new Set(v.map((x) => JSON.stringify(x)));
    if (seen.size !== v.length) out.push({ path, message: "must not contain duplicates" });
  }
  v.forEach((item, i) => {
    if (s.items) validateNode(s.items, item, `${path}[${i}]`, out);
  });
}

function checkObject(
  s: JsonSchema,
  v: Record<string, unknown>,
  path: string,
  out: FieldError[],
): void {
  for (const key of s.required ?? []) {
    if (!(key in v)) out.push({ path: join(path, key), message: "Required value" });
  }
  for (const [key, value] of Object.entries(v)) {
    const p = join(path, key);
    const prop = s.properties?.[key];
    if (prop) validateNode(prop, value, p, out);
    else if (typeof s.additionalProperties === "object") {
      validateNode(s.additionalProperties, value, p, out);
    } else if (s.properties && !s["x-kubernetes-preserve-unknown-fields"]) {
      out.push({ path: p, message: "unknown field" });
    }
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function validateNode(s: JsonSchema, v: unknown, path: string, out: FieldError[]): void {
  const typeError = checkType(s, v);
  if (typeError) {
    out.push({ path, message: typeError });
    return;
  }
  if (v === null) return;
  if (s.enum && !s.enum.includes(v as string | number)) {
    out.push({ path, message: `Unsupported value: must be one of ${s.enum.join(", ")}` });
  }
  if (typeof v === "string") checkString(s, v, path, out);
  else if (typeof v === "number") checkNumber(s, v, path, out);
  else if (Array.isArray(v)) checkArray(s, v, path, out);
  else if (typeof v === "object") checkObject(s, v as Record<string, unknown>, path, out);
}

/** Validates `value` against `schema`; returns every structural error (empty when valid). */
export function validateSchema(schema: JsonSchema, value: unknown, path = ""): FieldError[] {
  const out: FieldError[] = [];
  validateNode(schema, value, path, out);
  return out;
}

/** The OpenAPI schema of a kind's (only) version. */
export function kindSchema(kind: KindDefinition<unknown, unknown>): JsonSchema {
  const spec = kind.crd.spec as { versions: { schema: { openAPIV3Schema: JsonSchema } }[] };
  const version = spec.versions[0];
  if (!version) throw new Error(`Kind ${kind.kind} has no version`);
  return version.schema.openAPIV3Schema;
}

/**
 * Validates a whole object (apiVersion, kind, metadata.name, then the schema) against a kind.
 * Field paths are relative to the object, e.g. `spec.password.length`.
 */
export function validateObject(kind: KindDefinition<unknown, unknown>, obj: unknown): FieldError[] {
  const o = obj as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown } };
  const out: FieldError[] = [];
  if (o?.apiVersion !== kind.apiVersion) {
    out.push({ path: "apiVersion", message: `must be ${kind.apiVersion}` });
  }
  if (o?.kind !== kind.kind) out.push({ path: "kind", message: `must be ${kind.kind}` });
  if (typeof o?.metadata?.name !== "string" || o.metadata.name === "") {
    out.push({ path: "metadata.name", message: "Required value" });
  }
  out.push(...validateSchema(kindSchema(kind), obj));
  return out;
}

/**
 * Returns a copy of `value` with the schema's defaults filled in, as the apiserver does:
 * a missing property with a default gets it, then defaulting continues inside.
 */
export function applyDefaults<T>(schema: JsonSchema, value: T): T {
  return fill(schema, structuredClone(value)) as T;
}

function fill(s: JsonSchema, v: unknown): unknown {
  if (Array.isArray(v)) return s.items ? v.map((x) => fill(s.items as JsonSchema, x)) : v;
  if (v === null || typeof v !== "object") return v;
  const o = v as Record<string, unknown>;
  for (const [key, prop] of Object.entries(s.properties ?? {})) {
    if (!(key in o) && prop.default !== undefined) o[key] = structuredClone(prop.default);
    if (key in o) o[key] = fill(prop, o[key]);
  }
  if (typeof s.additionalProperties === "object") {
    for (const key of Object.keys(o)) o[key] = fill(s.additionalProperties, o[key]);
  }
  return o;
}
