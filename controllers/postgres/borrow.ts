/**
 * Borrowed session memberships. A non-superuser admin may end only sessions of roles whose
 * privileges it has (PG15: pg_signal_backend needs has_privs_of_role). To drop a database or
 * swap a restored one in while other roles' sessions hold it open, the admin needs those roles
 * for a moment. The membership must never stay granted, even if the process dies in between.
 *
 * So nothing is granted to the admin directly. In ONE transaction, the admin creates a NOLOGIN
 * borrow role (deterministic name per borrowing resource, marker comment
 * `dbtether:SessionBorrow/<ns>/<Kind>.<name>`), grants it the session roles and grants the borrow
 * role to itself: the record of what was borrowed and the borrowing commit together, in the
 * server itself. Giving back is `DROP ROLE` of that role, which removes every membership it
 * held. Whoever works for that resource next (the next reconcile, the next attempt) gives back
 * first, so a SIGKILL between borrowing and giving back leaves the memberships only until then.
 */
import { createHash } from "node:crypto";
import { sessionsIn } from "./catalog.ts";
import { formatMarker, type Marker, parseMarker, sameMarker } from "./names.ts";
import type { Sql } from "./pool.ts";
import { ident, literal } from "./quote.ts";
import * as st from "./statements.ts";
import type { Statement } from "./statements.ts";

/** The resource on whose behalf sessions are ended. */
export interface Borrower {
  kind: string;
  namespace: string;
  name: string;
}

/** What borrowing needs from the executor: statements and read-only queries. */
export interface BorrowExec {
  apply(statements: readonly Statement[]): Promise<number>;
  query<T>(fn: (sql: Sql) => Promise<T>, database?: string): Promise<T>;
}

/** The borrow role of a resource: its name and the marker its comment carries. */
export function borrowRole(b: Borrower): { name: string; marker: Marker } {
  const hash = createHash("sha256").update(`${b.kind}/${b.namespace}/${b.name}`).digest("hex");
  return {
    name: `dbtether_borrow_${hash.slice(0, 16)}`,
    marker: { kind: "SessionBorrow", namespace: b.namespace, name: `${b.kind}.${b.name}` },
  };
}

/** Gives back what `b` borrowed (drops its borrow role); returns the statements sent. */
export async function giveBack(exec: BorrowExec, b: Borrower): Promise<number> {
  const role = borrowRole(b);
  const rows = await exec.query((sql) =>
    sql<{ comment: string | null }[]>`
      SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles
      WHERE rolname = ${role.name}`
  );
  const row = rows[0];
  // A role of that name without our marker is not ours to drop.
  if (!row || !sameMarker(parseMarker(row.comment), role.marker)) return 0;
  return await exec.apply([{ sql: st.dropRole(ident(role.name)) }]);
}

/**
 * Makes the admin able to end every session in `databases` whose role it cannot act for now,
 * through `b`'s borrow role (given back first if one was left). Returns the roles borrowed; none
 * when there is nothing to borrow (superusers' sessions cannot be borrowed: ending them fails).
 */
export async function borrowSessions(
  exec: BorrowExec,
  b: Borrower,
  databases: readonly string[],
): Promise<string[]> {
  await giveBack(exec, b);
  const roles = new Set<string>();
  for (const d of databases) {
    const sessions = await exec.query((sql) => sessionsIn(sql, d));
    for (const s of sessions) if (!s.canSignal && s.role) roles.add(s.role);
  }
  if (!roles.size) return [];
  const json = JSON.stringify([...roles]);
  const borrowable = await exec.query((sql) =>
    sql<{ name: string; admin: string }[]>`
      SELECT r.rolname AS name, current_user AS admin FROM pg_roles r
      WHERE r.rolname IN (SELECT jsonb_array_elements_text(${json}::text::jsonb))
        AND NOT r.rolsuper
        AND NOT EXISTS (SELECT 1 FROM pg_auth_members m
                        WHERE m.roleid = r.oid
                          AND m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user))
      ORDER BY 1`
  );
  if (!borrowable.length) return [];
  const role = borrowRole(b);
  const q = ident(role.name);
  const admin = ident(borrowable[0]!.admin);
  await exec.apply([{
    sql: st.createRole(q, { login: false }),
    together: [
      st.commentOnRole(q, literal(formatMarker(role.marker))),
      ...borrowable.map((r) => st.grantRole(ident(r.name), q)),
      st.grantRole(q, admin),
    ],
  }]);
  return borrowable.map((r) => r.name);
}

/**
 * Ends every other client session in `databases` (the admin must be able to act for their
 * roles). Autovacuum workers are left to the server, which stops them itself for DROP and
 * RENAME; a non-superuser may not signal them.
 */
export async function endSessions(exec: BorrowExec, databases: readonly string[]): Promise<number> {
  const json = JSON.stringify(databases);
  const rows = await exec.query((sql) =>
    sql<{ ended: boolean }[]>`
      SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
      WHERE datname IN (SELECT jsonb_array_elements_text(${json}::text::jsonb))
        AND pid <> pg_backend_pid() AND backend_type = 'client backend'`
  );
  return rows.filter((r) => r.ended).length;
}
