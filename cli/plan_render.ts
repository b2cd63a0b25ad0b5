/**
 * What `dbtether plan` prints: per resource, the SQL the controller would send and the Secrets
 * it would write, as text or JSON, and the exit code (0 nothing would change, 2 changes, 1 a
 * resource could not be planned). Pure. Every statement passes the SQL module's redaction here,
 * so a password never reaches the output whatever the caller handed in; Secrets are listed by
 * their data keys, never their values.
 */
import { redact } from "../controllers/postgres/statements.ts";

/** A Secret the controller would write or delete. */
export interface SecretPlan {
  action: "create" | "update" | "delete";
  name: string;
  /** The data keys of the Secret as it would be written (none for delete). */
  keys: string[];
}

/** What one resource of the manifests would cause. */
export interface ResourcePlan {
  kind: string;
  namespace?: string;
  name: string;
  /** `planned`: see statements/secrets; `blocked`: the controller would refuse (reason). */
  result: "planned" | "blocked" | "skipped";
  statements: { sql: string; database?: string }[];
  secrets: SecretPlan[];
  /** What could not be planned ahead (inside a database that does not exist yet, ...). */
  notes: string[];
  blocked?: { reason: string; message: string };
}

/** Whether the resource would change anything. */
export function hasChanges(p: ResourcePlan): boolean {
  return p.statements.length > 0 || p.secrets.length > 0;
}

/** 1 when a resource is blocked, else 2 when anything would change, else 0. */
export function exitCode(plans: readonly ResourcePlan[]): number {
  if (plans.some((p) => p.result === "blocked")) return 1;
  return plans.some(hasChanges) ? 2 : 0;
}

function title(p: ResourcePlan): string {
  return `${p.kind} ${p.namespace ? `${p.namespace}/` : ""}${p.name}`;
}

/** The plan as a reader sees it: one block per resource. */
export function renderText(plans: readonly ResourcePlan[]): string {
  const out: string[] = [];
  for (const p of plans) {
    out.push(`${title(p)}:`);
    if (p.result === "skipped") out.push(`  not planned (kind ${p.kind})`);
    else if (p.result === "blocked") {
      out.push(`  blocked (${p.blocked?.reason ?? "Unknown"}): ${p.blocked?.message ?? ""}`);
    } else if (!hasChanges(p)) out.push("  no changes");
    for (const s of p.statements) {
      const where = s.database === undefined ? "" : ` (in database ${JSON.stringify(s.database)})`;
      out.push(`  sql${where}: ${oneLine(redact(s.sql))}`);
    }
    for (const s of p.secrets) {
      const keys = s.keys.length ? ` (keys: ${s.keys.join(", ")})` : "";
      out.push(`  secret ${s.action} ${JSON.stringify(s.name)}${keys}`);
    }
    for (const n of p.notes) out.push(`  note: ${n}`);
  }
  const changed = plans.filter(hasChanges).length;
  const blocked = plans.filter((p) => p.result === "blocked").length;
  out.push(
    `\n${plans.length} resource(s): ${changed} with changes, ${blocked} blocked, ` +
      `${plans.length - changed - blocked} unchanged or not planned`,
  );
  return out.join("\n") + "\n";
}

/** The plan as JSON (statements redacted as in the text form). */
export function renderJson(plans: readonly ResourcePlan[]): string {
  const safe = plans.map((p) => ({
    ...p,
    changes: hasChanges(p),
    statements: p.statements.map((s) => ({ ...s, sql: redact(s.sql) })),
  }));
  return JSON.stringify({ resources: safe, exitCode: exitCode(plans) }, null, 2) + "\n";
}

/** Multi-line statements (DO blocks) on one line, so each statement is one line of output. */
function oneLine(sql: string): string {
  return sql.replace(/\s*\n\s*/g, " ");
}
