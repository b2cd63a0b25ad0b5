/**
 * A Database's extensions: what the server offers (pg_available_extension_versions, and a managed
 * service's own allow-list where it publishes one as a setting), what the database has, and per
 * extension the one statement that converges it (CREATE EXTENSION with its schema and version,
 * or ALTER EXTENSION ... UPDATE TO when the version changed), or why none can. The observation is
 * read-only with bind parameters; the planner is pure.
 */
import type { Sql } from "./pool.ts";
import { ident, literal } from "./quote.ts";
import * as st from "./statements.ts";
import type { Statement } from "./statements.ts";

/** An extension the spec asks for. */
export interface ExtensionSpec {
  name: string;
  version?: string;
  schema?: string;
}

/** What the server and the database show about the asked extensions. */
export interface ExtensionState {
  /** Installed in the database: version and schema. */
  installed: Map<string, { version: string; schema: string }>;
  /** Versions the server's files offer, per asked name (absent: not on the server). */
  available: Map<string, string[]>;
  /**
   * A managed service's allow-list (`rds.allowed_extensions`, `azure.extensions`), when the
   * server has one and it is not `*`.
   */
  allowList?: { setting: string; names: string[] };
}

/** What to do for one extension. */
export type ExtensionStep =
  | { name: string; kind: "present" }
  | { name: string; kind: "apply"; statement: Statement }
  | { name: string; kind: "refused"; message: string };

/** Settings through which managed services say which extensions may be created. */
const ALLOW_LIST_SETTINGS = ["rds.allowed_extensions", "azure.extensions"] as const;

/** Reads what {@link planExtensions} needs for `names` in the current database. */
export async function observeExtensions(
  sql: Sql,
  names: readonly string[],
): Promise<ExtensionState> {
  const json = JSON.stringify([...new Set(names)]);
  const installed = await sql<{ name: string; version: string; schema: string }[]>`
    SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace`;
  const available = await sql<{ name: string; versions: string[] }[]>`
    SELECT name, array_to_json(array_agg(version::text ORDER BY version)) AS versions
    FROM pg_available_extension_versions
    WHERE name IN (SELECT jsonb_array_elements_text(${json}::text::jsonb))
    GROUP BY name`;
  const state: ExtensionState = {
    installed: new Map(installed.map((r) => [r.name, { version: r.version, schema: r.schema }])),
    available: new Map(available.map((r) => [r.name, r.versions])),
  };
  for (const setting of ALLOW_LIST_SETTINGS) {
    const [row] = await sql<{ value: string | null }[]>`
      SELECT current_setting(${setting}, true) AS value`;
    const value = row?.value?.trim();
    if (value && value !== "*") {
      state.allowList = { setting, names: value.split(",").map((v) => v.trim()).filter(Boolean) };
      break;
    }
  }
  return state;
}

/** The step for each of `wanted` in `database`, in order. */
export function planExtensions(
  wanted: readonly ExtensionSpec[],
  o: { database: string; state: ExtensionState },
): ExtensionStep[] {
  return wanted.map((e) => stepOf(e, o));
}

function stepOf(e: ExtensionSpec, o: { database: string; state: ExtensionState }): ExtensionStep {
  const { name } = e;
  const have = o.state.installed.get(name);
  const versions = o.state.available.get(name);
  const refused = (message: string): ExtensionStep => ({ name, kind: "refused", message });
  const list = (v: readonly string[]) => v.map((x) => JSON.stringify(x)).join(", ");
  const versionMissing = () =>
    refused(
      `version ${JSON.stringify(e.version)} is not available on the server (available: ${
        list(versions ?? [])
      })`,
    );
  if (have) {
    if (e.version === undefined || e.version === have.version) return { name, kind: "present" };
    if (versions && !versions.includes(e.version)) return versionMissing();
    const statement = st.alterExtensionUpdate(ident(name), o.database, literal(e.version));
    return { name, kind: "apply", statement };
  }
  const allow = o.state.allowList;
  if (allow && !allow.names.includes(name)) {
    return refused(
      `the server's ${allow.setting} does not allow it (allowed: ${list(allow.names)})`,
    );
  }
  if (!versions) return refused("it is not available on the server (pg_available_extensions)");
  if (e.version !== undefined && !versions.includes(e.version)) return versionMissing();
  const statement = st.createExtension(ident(name), o.database, {
    ...(e.schema ? { schema: ident(e.schema) } : {}),
    ...(e.version ? { version: literal(e.version) } : {}),
  });
  return { name, kind: "apply", statement };
}

/** Extensions found in another schema than the spec names, as `extension x: ...` lines. */
export function extensionDifferences(
  wanted: readonly ExtensionSpec[],
  state: ExtensionState,
): string[] {
  const out: string[] = [];
  for (const e of wanted) {
    const have = state.installed.get(e.name);
    if (have && e.schema !== undefined && have.schema !== e.schema) {
      out.push(
        `extension ${JSON.stringify(e.name)} schema: spec ${JSON.stringify(e.schema)}, ` +
          `database ${JSON.stringify(have.schema)}`,
      );
    }
  }
  return out;
}

/** spec.extensions and spec.extensionOptions as one list, each name once (options win). */
export function mergeExtensions(
  names: readonly string[],
  options: readonly ExtensionSpec[],
): ExtensionSpec[] {
  const byName = new Map<string, ExtensionSpec>();
  for (const n of names) byName.set(n, { name: n });
  for (const e of options) byName.set(e.name, e);
  return [...byName.values()];
}
