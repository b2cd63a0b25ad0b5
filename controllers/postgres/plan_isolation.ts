/**
 * Pure planner for DBCluster spec.isolation: which databases of the server dbtether does not
 * manage still let PUBLIC connect, and the one transaction per database that replaces PUBLIC's
 * CONNECT with CONNECT for each login role that can connect today and was not created by
 * dbtether. Roles dbtether creates then reach only the databases they are granted; nobody else
 * loses access.
 */
import type { IsolationSnapshot, ServerDatabase, ServerRole } from "./catalog.ts";
import { ident, structuralProblem } from "./quote.ts";
import * as st from "./statements.ts";
import type { Statement } from "./statements.ts";

/** Why PUBLIC may still connect to a database dbtether does not manage, declared once. */
export type IsolationBlockReason =
  | "OwnerNotActable"
  | "PublicGrantedByOther"
  | "NameNotSupported";

/** A database dbtether does not manage whose PUBLIC CONNECT it cannot replace. */
export interface BlockedDatabase {
  database: string;
  owner: string;
  reason: IsolationBlockReason;
  message: string;
}

/** A database to restrict now: who gets CONNECT of their own, and the transaction. */
export interface RestrictDatabase {
  database: string;
  grantees: string[];
  statement: Statement;
}

/** What isolation finds on a server. */
export interface IsolationPlan {
  /** Databases dbtether does not manage that PUBLIC cannot connect to. */
  closed: string[];
  /** Databases PUBLIC can connect to, and how to restrict each one. */
  restrict: RestrictDatabase[];
  /** Databases PUBLIC can connect to that the admin cannot restrict. */
  blocked: BlockedDatabase[];
}

const MARKER = "dbtether:";

const marked = (comment: string | null) => comment?.startsWith(MARKER) ?? false;

/**
 * Whether isolation leaves `db` out: templates, databases carrying any dbtether marker (claims,
 * a restore's scratch database), and databases owned by a role dbtether created. The last one
 * covers the moment between CREATE DATABASE and its COMMENT, when a Database's database is not
 * marked yet.
 */
export function managedOrTemplate(db: ServerDatabase): boolean {
  return db.template || marked(db.comment) || marked(db.ownerComment);
}

/**
 * Roles that keep CONNECT when PUBLIC loses it: login roles without a dbtether marker, not
 * superusers (they connect anyway), without a CONNECT entry of their own already. NOLOGIN
 * roles cannot connect, and granting them would let their members (possibly roles dbtether
 * created, or a group role dbtether has just created and not yet marked) inherit it.
 */
export function keepConnect(db: ServerDatabase, roles: readonly ServerRole[]): string[] {
  return roles.filter((r) =>
    r.login && !r.superuser && !r.name.startsWith("pg_") && !marked(r.comment) &&
    !db.connect.includes(r.name)
  ).map((r) => r.name).sort();
}

const show = (name: string) => JSON.stringify(name);

function whyBlocked(
  db: ServerDatabase,
  admin: string,
  grantees: string[],
): BlockedDatabase | undefined {
  const base = { database: db.name, owner: db.owner };
  if (!db.ownerActable) {
    return {
      ...base,
      reason: "OwnerNotActable",
      message: `Cannot restrict CONNECT on database ${show(db.name)}: its owner ${
        show(db.owner)
      } is a role whose privileges the admin ${show(admin)} does not have`,
    };
  }
  const others = db.publicConnectBy.filter((g) => g !== db.owner);
  if (others.length) {
    return {
      ...base,
      reason: "PublicGrantedByOther",
      message: `Cannot restrict CONNECT on database ${show(db.name)}: PUBLIC's CONNECT was ` +
        `granted by ${others.map(show).join(", ")}, not by its owner; only that role can revoke it`,
    };
  }
  const odd = [db.name, ...grantees].find((n) => structuralProblem(n) !== undefined);
  if (odd !== undefined) {
    return {
      ...base,
      reason: "NameNotSupported",
      message: `Cannot restrict CONNECT on database ${show(db.name)}: the name ${show(odd)} ` +
        `${structuralProblem(odd)}`,
    };
  }
  return undefined;
}

/** Classifies every database dbtether does not manage and plans the restrictions. Pure. */
export function planIsolation(snap: IsolationSnapshot): IsolationPlan {
  const plan: IsolationPlan = { closed: [], restrict: [], blocked: [] };
  for (const db of snap.databases) {
    if (managedOrTemplate(db)) continue;
    if (db.publicConnectBy.length === 0) {
      plan.closed.push(db.name);
      continue;
    }
    const grantees = keepConnect(db, snap.roles);
    const refusal = whyBlocked(db, snap.currentUser, grantees);
    if (refusal) {
      plan.blocked.push(refusal);
      continue;
    }
    const q = ident(db.name);
    const revoke = st.revokeOnDatabase(["CONNECT"], q, "PUBLIC");
    // One transaction: the grants commit with the revoke, so nobody is locked out in between.
    const statement: Statement = grantees.length
      ? { sql: st.grantOnDatabaseTo(["CONNECT"], q, grantees.map(ident)), together: [revoke] }
      : { sql: revoke };
    plan.restrict.push({ database: db.name, grantees, statement });
  }
  return plan;
}
