/**
 * Borrowed session memberships. A non-superuser admin may end only sessions of roles whose
 * privileges it has, or, as a member of pg_signal_backend, of every non-superuser. To drop a database or
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
import { RetryableError } from "../../lib/errors.ts";
import { type ServerCapabilities, serverCapabilities } from "./capabilities.ts";
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

/** A role with sessions to end, as the borrow planner sees it. */
export interface SessionRole {
  name: string;
  superuser: boolean;
  /** The admin has its privileges already (pg_has_role USAGE): nothing to borrow. */
  privileges: boolean;
  /** The admin holds it WITH ADMIN OPTION (so may grant it on 16+). */
  adminOption: boolean;
}

/** What to borrow, and the roles whose sessions the admin cannot end at all. */
export interface BorrowPlan {
  statements: Statement[];
  borrowed: string[];
  /** Superusers, and on 16+ roles the admin does not hold WITH ADMIN OPTION. */
  blocked: string[];
}

/**
 * Pure: the one transaction that borrows `roles` for `b` through its borrow role, given the
 * server's rules (up to 15 CREATEROLE grants any non-superuser role; from 16 only roles held
 * WITH ADMIN OPTION).
 */
export function planBorrow(
  caps: Pick<ServerCapabilities, "grantNeedsAdminOption">,
  o: { borrower: Borrower; admin: string; roles: readonly SessionRole[] },
): BorrowPlan {
  const need = o.roles.filter((r) => !r.privileges);
  const blocked = need.filter((r) => r.superuser || (caps.grantNeedsAdminOption && !r.adminOption))
    .map((r) => r.name);
  const borrowed = need.map((r) => r.name).filter((n) => !blocked.includes(n)).sort();
  if (!borrowed.length) return { statements: [], borrowed, blocked };
  const role = borrowRole(o.borrower);
  const q = ident(role.name);
  return {
    statements: [{
      sql: st.createRole(q, { login: false }),
      together: [
        st.commentOnRole(q, literal(formatMarker(role.marker))),
        ...borrowed.map((r) => st.grantRole(ident(r), q)),
        st.grantRole(q, ident(o.admin)),
      ],
    }],
    borrowed,
    blocked,
  };
}

/**
 * Makes the admin able to end every session in `databases` whose role it cannot act for now,
 * through `b`'s borrow role (given back first if one was left). Returns the roles borrowed and
 * those it cannot borrow (superusers; on 16+ roles it does not hold WITH ADMIN OPTION).
 */
export async function borrowSessions(
  exec: BorrowExec,
  b: Borrower,
  databases: readonly string[],
): Promise<{ borrowed: string[]; blocked: string[] }> {
  await giveBack(exec, b);
  const roles = new Set<string>();
  for (const d of databases) {
    const sessions = await exec.query((sql) => sessionsIn(sql, d));
    for (const s of sessions) if (!s.canSignal && s.role) roles.add(s.role);
  }
  if (!roles.size) return { borrowed: [], blocked: [] };
  // Whether the admin has the role's privileges, not whether it is a member: on PG16+ a
  // CREATEROLE admin is a member (ADMIN OPTION, no INHERIT) of every role it created, and that
  // membership does not let it signal their sessions.
  const json = JSON.stringify([...roles]);
  const rows = await exec.query((sql) =>
    sql<(SessionRole & { admin: string; version: string })[]>`
      SELECT r.rolname AS name, r.rolsuper AS superuser,
             pg_has_role(current_user, r.oid, 'USAGE') AS privileges,
             pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION') AS "adminOption",
             current_user AS admin, current_setting('server_version_num') AS version
      FROM pg_roles r
      WHERE r.rolname IN (SELECT jsonb_array_elements_text(${json}::text::jsonb))
      ORDER BY 1`
  );
  if (!rows.length) return { borrowed: [], blocked: [] };
  const plan = planBorrow(serverCapabilities(Number(rows[0]!.version)), {
    borrower: b,
    admin: rows[0]!.admin,
    roles: rows,
  });
  if (plan.statements.length) await exec.apply(plan.statements);
  return { borrowed: plan.borrowed, blocked: plan.blocked };
}

/**
 * The clear reason when sessions of `blocked` roles keep `database` open and the admin cannot
 * end them: what to grant, or what to end by hand. Retryable: the sessions may end by themselves.
 */
export function sessionsBlockedError(
  action: string,
  blocked: readonly string[],
  cause?: unknown,
): RetryableError {
  return new RetryableError(
    "PermissionDenied",
    `Cannot ${action}: the admin role cannot end the open sessions of ${
      blocked.map((r) => JSON.stringify(r)).join(", ")
    } (a non-superuser admin ends only sessions of roles it has the privileges of, or of any ` +
      "non-superuser as a member of pg_signal_backend, and from PostgreSQL 16 borrows only roles " +
      "it holds WITH ADMIN OPTION): grant pg_signal_backend to the admin role, or end those " +
      "sessions; retrying until they are gone",
    cause === undefined ? {} : { cause },
  );
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
