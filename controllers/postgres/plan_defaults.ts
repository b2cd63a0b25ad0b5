/**
 * The default privileges the group roles get on what a role creates later, database-wide
 * (plan.ts: `FOR ROLE r`, schemas included) or in one schema (plan_schema_grants.ts: `FOR ROLE r
 * IN SCHEMA s`): one table of rows and one planner for both.
 */
import { catalogIdent, ident } from "./quote.ts";
import * as st from "./statements.ts";
import type {
  DefaultObjects,
  SchemaPrivilege,
  SequencePrivilege,
  TablePrivilege,
} from "./statements.ts";

/** One row: what `group` gets by default on objects of kind `on` (`code` in pg_default_acl). */
export interface DefaultRow {
  on: DefaultObjects;
  code: string;
  privs: (TablePrivilege | SequencePrivilege | SchemaPrivilege)[];
  group: "readonly" | "readwrite";
}

/** Tables and sequences: what the readonly and readwrite groups get, in a schema or anywhere. */
export const RELATION_DEFAULTS: readonly DefaultRow[] = [
  { on: "TABLES", code: "r", privs: ["SELECT"], group: "readonly" },
  { on: "TABLES", code: "r", privs: ["INSERT", "UPDATE", "DELETE"], group: "readwrite" },
  { on: "SEQUENCES", code: "S", privs: ["SELECT"], group: "readonly" },
  { on: "SEQUENCES", code: "S", privs: ["USAGE"], group: "readwrite" },
];

/** Database-wide, schemas created later too (not possible IN SCHEMA). */
export const DATABASE_DEFAULTS: readonly DefaultRow[] = [
  { on: "SCHEMAS", code: "n", privs: ["USAGE"], group: "readonly" },
  ...RELATION_DEFAULTS,
];

/** A default-privilege entry as the catalog shows it. */
export interface DefaultEntry {
  forRole: string;
  objects: string;
  grantee: string;
  privilege: string;
}

/**
 * `ALTER DEFAULT PRIVILEGES FOR ROLE forRole [IN SCHEMA s]` statements for `rows`: with GRANT,
 * the privileges the grantees miss; with REVOKE, those they have.
 */
export function planDefaultRows(
  forRole: string,
  o: {
    rows: readonly DefaultRow[];
    grantees: { readonly: string; readwrite: string };
    acls: readonly DefaultEntry[];
    action: "GRANT" | "REVOKE";
    inSchema?: string;
  },
): string[] {
  const out: string[] = [];
  for (const d of o.rows) {
    const grantee = o.grantees[d.group];
    const have = (p: string) =>
      o.acls.some((a) =>
        a.forRole === forRole && a.objects === d.code && a.grantee === grantee && a.privilege === p
      );
    const privs = d.privs.filter((p) => o.action === "GRANT" ? !have(p) : have(p));
    if (privs.length === 0) continue;
    out.push(st.alterDefaultPrivileges(ident(forRole), {
      action: o.action,
      privs,
      on: d.on,
      grantee: ident(grantee),
      ...(o.inSchema === undefined ? {} : { inSchema: catalogIdent(o.inSchema) }),
    }));
  }
  return out;
}
