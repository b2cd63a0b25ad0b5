/**
 * What the tenant-safety tests share: manifests a tenant may apply in its own namespace,
 * snapshots of the server's roles and memberships (read as the bootstrap superuser, so passwords
 * are compared as their stored verifiers), the statements the admin sent, and Warning Events.
 * Reading conditions and Secrets, and waiting for a reason, are in fixtures.ts.
 *
 * ```ts
 * await env.kube.apply(resource("DatabaseUser", { name: "evil", ns, spec: "username: alice\n" }));
 * const before = await rolesSnapshot(env.pg);
 * ```
 */
import type { TestEnv } from "./env.ts";
import type { PgServer } from "./postgres.ts";

/** Mutating statements as PostgreSQL logs them with log_statement=all. */
export const MUTATING =
  /(statement|execute [^:]*): (CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|REASSIGN)\b/i;

/** A namespaced dbtether object as YAML; `spec` is indented YAML without the `spec:` line. */
export function resource(
  kind: "Database" | "DatabaseUser" | "PostgresDatabase",
  o: { name: string; ns: string; spec: string; annotations?: Record<string, string> },
): string {
  const api = kind === "PostgresDatabase"
    ? "experimental.bujarmurati.com/v1"
    : "dbtether.io/v1alpha1";
  const ann = Object.entries(o.annotations ?? {}).map(([k, v]) => `    ${k}: "${v}"`).join("\n");
  return `apiVersion: ${api}
kind: ${kind}
metadata:
  name: ${o.name}
  namespace: ${o.ns}
${ann ? `  annotations:\n${ann}\n` : ""}spec:
${o.spec.replace(/^(?=.)/gm, "  ")}`;
}

/** DBCluster spec lines granting adoption to `namespaces` (clusterManifest's extraSpec). */
export function adoptionGrant(namespaces: readonly string[]): string {
  return `  adoption:\n    allowedNamespaces:\n      names: [${namespaces.join(", ")}]\n`;
}

/**
 * Every role with its attributes, stored password verifier and comment, and every membership:
 * what an adoption could change. Lines, sorted.
 */
export async function rolesSnapshot(pg: PgServer): Promise<string[]> {
  const roles = await pg.superSql(
    `SELECT 'role ' || rolname || ' ' || rolsuper || rolcreaterole || rolcreatedb ||
            rolbypassrls || rolreplication || rolcanlogin || ' ' || rolconnlimit || ' ' ||
            coalesce(rolpassword, '-') || ' ' ||
            coalesce(shobj_description(oid, 'pg_authid'), '-')
     FROM pg_authid ORDER BY rolname`,
  );
  const members = await pg.superSql(
    `SELECT 'member ' || r.rolname || ' <- ' || m.rolname || ' ' || am.admin_option
     FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid
     JOIN pg_roles m ON m.oid = am.member ORDER BY 1`,
  );
  return [...roles.split("\n"), ...members.split("\n")].filter((l) => l !== "").sort();
}

/** The server log's length now, to read what comes after. */
export async function logMark(pg: PgServer): Promise<number> {
  return (await pg.readLog()).length;
}

/** Mutating statements the admin sent since `mark`. */
export async function mutatingSince(env: TestEnv, mark: number): Promise<string[]> {
  const log = (await env.pg.readLog()).slice(mark);
  return log.split("\n").filter((l) => l.includes(`${env.pg.admin.user}@`) && MUTATING.test(l));
}

/** The Warning Events of one object, as "reason: message" lines. */
export async function warnings(env: TestEnv, name: string, ns: string): Promise<string[]> {
  const r = await env.kube.kubectl([
    "get",
    "events",
    "-n",
    ns,
    "--field-selector",
    `involvedObject.name=${name},type=Warning`,
    "-o",
    "json",
  ], { check: true });
  const items = (JSON.parse(r.stdout) as { items: { reason: string; message: string }[] }).items;
  return items.map((e) => `${e.reason}: ${e.message}`);
}
