/**
 * A small schema builder: each kind is declared once, and from that one declaration come the
 * CRD's OpenAPI v3 schema (with descriptions, enums, defaults and CEL rules) and the
 * TypeScript type the controllers use (`Infer<typeof schema>`).
 */

/** The subset of OpenAPI v3 (JSONSchemaProps) that CRDs use. */
export interface JsonSchema {
  type?: "object" | "string" | "integer" | "number" | "boolean" | "array";
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  enum?: (string | number)[];
  default?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  nullable?: boolean;
  "x-kubernetes-validations"?: { rule: string; message: string; messageExpression?: string }[];
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-map-type"?: "atomic" | "granular";
}

/** A schema node carrying its TypeScript type `T` and whether it may be absent (`O`). */
export interface Schema<T, O extends boolean = false> {
  readonly json: JsonSchema;
  readonly optional: O;
  /** Phantom field: never set, only carries the type. */
  readonly __type?: T;
}

/** The TypeScript type a schema describes. */
export type Infer<S> = S extends Schema<infer T, boolean> ? T : never;

type Shape = Record<string, Schema<unknown, boolean>>;
type OptionalKeys<P extends Shape> = {
  [K in keyof P]: P[K] extends Schema<unknown, true> ? K : never;
}[keyof P];
type RequiredKeys<P extends Shape> = Exclude<keyof P, OptionalKeys<P>>;
type Flatten<T> = { [K in keyof T]: T[K] } & unknown;
type ObjectOf<P extends Shape> = Flatten<
  & { [K in RequiredKeys<P>]: Infer<P[K]> }
  & { [K in OptionalKeys<P>]?: Infer<P[K]> }
>;

/** Options shared by every node: a description for `kubectl explain` and CEL rules. */
export interface Common {
  description?: string;
  rules?: { rule: string; message: string }[];
}

function node<T>(json: JsonSchema, c: Common): Schema<T> {
  const out: JsonSchema = { ...json };
  if (c.description) out.description = c.description;
  if (c.rules?.length) out["x-kubernetes-validations"] = c.rules;
  return { json: out, optional: false };
}

/** Marks a property optional: absent from `required`, `?` in the type. */
export function optional<T>(s: Schema<T, boolean>): Schema<T, true> {
  return { json: s.json, optional: true };
}

/**
 * What a default may leave out: an object default such as `{}` relies on the defaults of its own
 * properties, which the apiserver applies after it.
 */
export type DefaultValue<T> = T extends readonly unknown[] ? T : T extends object ? Partial<T> : T;

/**
 * A property with a server-side default: required in the type, since the apiserver fills it.
 * The type comes from the schema alone (`NoInfer`), so a partial default such as `{}` cannot
 * narrow it and drop the schema's optional fields.
 */
export function withDefault<T>(s: Schema<T, boolean>, value: NoInfer<DefaultValue<T>>): Schema<T> {
  return { json: { ...s.json, default: value }, optional: false };
}

export function str(
  c: Common & { pattern?: string; minLength?: number; maxLength?: number; format?: string } = {},
): Schema<string> {
  const { description: _d, rules: _r, ...rest } = c;
  return node({ type: "string", ...rest }, c);
}

export function int(c: Common & { minimum?: number; maximum?: number } = {}): Schema<number> {
  const { description: _d, rules: _r, ...rest } = c;
  return node({ type: "integer", ...rest }, c);
}

export function bool(c: Common = {}): Schema<boolean> {
  return node({ type: "boolean" }, c);
}

export function enumOf<const V extends readonly string[]>(
  values: V,
  c: Common = {},
): Schema<V[number]> {
  return node({ type: "string", enum: [...values] }, c);
}

export function arr<T>(
  item: Schema<T, boolean>,
  c: Common & { minItems?: number; maxItems?: number; listType?: "atomic" | "set" } = {},
): Schema<T[]> {
  const json: JsonSchema = { type: "array", items: item.json };
  if (c.minItems !== undefined) json.minItems = c.minItems;
  if (c.maxItems !== undefined) json.maxItems = c.maxItems;
  if (c.listType) json["x-kubernetes-list-type"] = c.listType;
  return node(json, c);
}

export function obj<P extends Shape>(props: P, c: Common = {}): Schema<ObjectOf<P>> {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [k, v] of Object.entries(props)) {
    properties[k] = v.json;
    if (!v.optional && v.json.default === undefined) required.push(k);
  }
  const json: JsonSchema = { type: "object", properties };
  if (required.length) json.required = required;
  return node(json, c);
}

/** A string-keyed map of `value`. */
export function record<T>(
  value: Schema<T, boolean>,
  c: Common & { maxProperties?: number } = {},
): Schema<Record<string, T>> {
  const { description: _d, rules: _r, ...rest } = c;
  return node({ type: "object", additionalProperties: value.json, ...rest }, c);
}

/** An integer or a string such as "50%" or a duration; kept as given. */
export function intOrString(c: Common = {}): Schema<number | string> {
  return node({ "x-kubernetes-int-or-string": true }, c);
}

/** Any JSON, stored as given (for opaque fields). */
export function anyValue(c: Common = {}): Schema<unknown> {
  return node({ type: "object", "x-kubernetes-preserve-unknown-fields": true }, c);
}
