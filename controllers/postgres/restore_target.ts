/**
 * The PostgreSQL side of a Restore: a restore never writes into the target database. It runs in
 * a scratch database on the same server, as a temporary login role that can act only as the
 * target's owner role, and only a complete, verified restore is swapped in by renaming.
 *
 * Names are deterministic from the target and the Restore's uid, so every attempt (and the
 * cleanup after a crash) finds what an earlier one made:
 * - scratch `<target>_restore_<h>`: CREATE DATABASE ... OWNER <owner> TEMPLATE template0 with the
 *   target's encoding and locale, COMMENT `dbtether:Restore/<ns>/<name>`, no CONNECT for PUBLIC;
 * - replaced `<target>_replaced_<h>`: the old target after the swap, until it is dropped;
 * - login role `dbtether_restore_<h>`: LOGIN, a member of the owner role only, password as a
 *   SCRAM verifier, the same COMMENT; the admin is a member of it (to reassign and drop what it
 *   owns). A dump that says `SET ROLE NONE` or `RESET ROLE` falls back to this role, which can do
 *   nothing the owner role cannot.
 *
 * The swap is one transaction (PostgreSQL 15 allows ALTER DATABASE RENAME and COMMENT ON DATABASE
 * in a transaction block): target → replaced, scratch → target, and the comments moved, after
 * connections to the target were refused and its sessions ended (borrowing roles the admin may
 * not signal, borrow.ts). Either both renames commit or neither does.
 */
import { createHash } from "node:crypto";
import { type Borrower, borrowSessions, endSessions, giveBack } from "./borrow.ts";
import { databasesDependingOn } from "./catalog.ts";
import type { PgExecutor } from "./execute.ts";
import { boundedName, formatMarker, type Marker, parseMarker, sameMarker } from "./names.ts";
import { type Ident, ident, type Literal, literal } from "./quote.ts";
import * as st from "./statements.ts";
import { TerminalError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { nullLogger } from "../../lib/log.ts";

/** Every name a Restore uses on the server, and the markers that prove they are its own. */
export interface RestorePlacement {
  /** The target database (the Database's name in PostgreSQL). */
  target: string;
  scratch: string;
  replaced: string;
  loginRole: string;
  /** The target's owner role; owns the scratch database and everything restored. */
  owner: string;
  /**
   * The owner role is this placement's own: a verification on another server than the
   * Database's, where the Database's owner role does not exist. `prepare` makes it (NOLOGIN,
   * marked) and the cleanup drops it.
   */
  ownOwner?: boolean;
  /** `dbtether:Restore/<ns>/<name>`: on the scratch, the replaced database and the login role. */
  restore: Marker;
  /** The Database's claim, moved to the swapped-in database. */
  claim: Marker;
  borrower: Borrower;
}

/** Pure: the names and markers of one Restore. */
export function restorePlacement(o: {
  target: string;
  owner: string;
  restore: { namespace: string; name: string; uid: string };
  database: { namespace: string; name: string };
}): RestorePlacement {
  const h = createHash("sha256").update(o.restore.uid).digest("hex");
  const r = o.restore;
  return {
    target: o.target,
    scratch: boundedName(o.target, `_restore_${h.slice(0, 8)}`),
    replaced: boundedName(o.target, `_replaced_${h.slice(0, 8)}`),
    loginRole: `dbtether_restore_${h.slice(0, 16)}`,
    owner: o.owner,
    restore: { kind: "Restore", namespace: r.namespace, name: r.name },
    claim: { namespace: o.database.namespace, name: o.database.name },
    borrower: { kind: "Restore", namespace: r.namespace, name: r.name },
  };
}

/**
 * Pure: the names and markers of a schedule's restore test (BackupSchedule spec.verify): the
 * same steps as a Restore without the swap. The scratch database `<target>_verify_<h>` and
 * the login role `dbtether_verify_<h>` hash the schedule's uid (one verification at a time per
 * schedule), so a crash mid-verification leaves names the next reconcile finds and drops; a
 * tenant cannot know the uid before the schedule exists, and a database of that name that is
 * not ours (marker or owner) is refused, never dropped. `elsewhere` (verify.clusterRef: a
 * server without the Database's owner role): the owner is a role of its own,
 * `dbtether_verifyowner_<h>`, made and dropped with the scratch database.
 */
export function verifyPlacement(o: {
  target: string;
  owner: string;
  schedule: { namespace: string; name: string; uid: string };
  database: { namespace: string; name: string };
  elsewhere?: boolean;
}): RestorePlacement {
  const h = createHash("sha256").update(`verify/${o.schedule.uid}`).digest("hex");
  const s = o.schedule;
  return {
    target: o.target,
    scratch: boundedName(o.target, `_verify_${h.slice(0, 8)}`),
    // Never made: a verification does not swap.
    replaced: boundedName(o.target, `_verify_${h.slice(0, 8)}_x`),
    loginRole: `dbtether_verify_${h.slice(0, 16)}`,
    owner: o.elsewhere ? `dbtether_verifyowner_${h.slice(0, 16)}` : o.owner,
    ...(o.elsewhere ? { ownOwner: true } : {}),
    restore: { kind: "BackupSchedule", namespace: s.namespace, name: s.name },
    claim: { namespace: o.database.namespace, name: o.database.name },
    borrower: { kind: "BackupSchedule", namespace: s.namespace, name: s.name },
  };
}

interface DatabaseRow {
  owner: string;
  comment: string | null;
  allow: boolean;
  encoding: string;
  collate: string;
  ctype: string;
  /** Every column, whatever the server version calls them (ICU settings moved in PG17). */
  row: Record<string, unknown>;
}

/** A refusal of the restore's target (the spec or the server must change). */
export type RestoreTargetReason =
  | "TargetNotEmpty"
  | "TargetNotFound"
  | "ScratchDatabaseTaken"
  | "ScratchRoleTaken";

/** Runs the restore's steps on one server, through the executor (statements are logged). */
export class RestoreTargetExecutor {
  readonly #exec: PgExecutor;
  readonly #log: Logger;

  constructor(exec: PgExecutor, opts: { logger?: Logger } = {}) {
    this.#exec = exec;
    this.#log = opts.logger ?? nullLogger;
  }

  async #database(name: string): Promise<DatabaseRow | undefined> {
    const rows = await this.#exec.query((sql) =>
      sql<DatabaseRow[]>`
        SELECT pg_get_userbyid(d.datdba) AS owner,
               shobj_description(d.oid, 'pg_database') AS comment,
               d.datallowconn AS allow, pg_encoding_to_char(d.encoding) AS encoding,
               d.datcollate AS collate, d.datctype AS ctype, to_jsonb(d) AS row
        FROM pg_database d WHERE d.datname = ${name}`
    );
    return rows[0];
  }

  async #roleMarker(name: string): Promise<Marker | null | undefined> {
    const rows = await this.#exec.query((sql) =>
      sql<{ comment: string | null }[]>`
        SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles
        WHERE rolname = ${name}`
    );
    if (!rows[0]) return undefined;
    return parseMarker(rows[0].comment) ?? null;
  }

  /**
   * Whether the scratch database is this Restore's: its marker, or its name with the target's
   * owner role as owner. Only the admin can give a database that owner (the owner role has no
   * CREATEDB), and the owner role itself may change the comment (a dump can say COMMENT ON
   * DATABASE; a crash can come between CREATE DATABASE and COMMENT), so the owner decides.
   */
  #ours(p: RestorePlacement, db: DatabaseRow | undefined): boolean {
    if (!db) return false;
    return db.owner === p.owner || sameMarker(parseMarker(db.comment), p.restore);
  }

  /** Whether an earlier attempt already swapped (the replaced database exists and is ours). */
  async swapped(p: RestorePlacement): Promise<boolean> {
    // Only the swap makes a database of that name (a rename) with that owner.
    return this.#ours(p, await this.#database(p.replaced));
  }

  /** Tables, views, sequences and large objects in the target (onConflict: fail). */
  async targetObjects(p: RestorePlacement): Promise<number> {
    const rows = await this.#exec.query((sql) =>
      sql<{ n: number }[]>`
        SELECT ((SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')
              + (SELECT count(*) FROM pg_largeobject_metadata))::int AS n`, p.target);
    return rows[0]?.n ?? 0;
  }

  /**
   * Removes whatever this Restore left on the server: the scratch and the replaced databases,
   * the login role, borrowed memberships; and lets connections into the target again if a swap
   * stopped half-way. Idempotent; returns the statements sent.
   */
  async cleanup(p: RestorePlacement): Promise<number> {
    let changed = 0;
    const scratch = await this.#database(p.scratch);
    if (this.#ours(p, scratch)) {
      // Our scratch database still exists, so no swap committed: if the target refuses
      // connections, a swap of ours stopped half-way. First let them in again (then the scratch
      // database goes: a second pass still knows).
      const target = await this.#database(p.target);
      if (target && !target.allow && sameMarker(parseMarker(target.comment), p.claim)) {
        changed += await this.#exec.apply([
          { sql: st.alterDatabaseAllowConnections(ident(p.target), true) },
        ]);
      }
      changed += await this.#exec.dropDatabaseForce(ident(p.scratch), p.scratch, p.borrower);
    }
    if (await this.swapped(p)) {
      changed += await this.#exec.dropDatabaseForce(ident(p.replaced), p.replaced, p.borrower);
    }
    changed += await this.#dropLoginRole(p);
    changed += await giveBack(this.#exec, p.borrower);
    if (changed) this.#log.info("Cleaned up after a restore", { changed });
    return changed;
  }

  /**
   * After a restore test ({@link verifyPlacement}): drops the scratch database when it is ours,
   * the login role, borrowed memberships. The target is never touched (a verification does not
   * swap; a Restore swapping the same target at this moment has its own cleanup). Idempotent.
   */
  async cleanupVerification(p: RestorePlacement): Promise<number> {
    let changed = 0;
    if (this.#ours(p, await this.#database(p.scratch))) {
      changed += await this.#exec.dropDatabaseForce(ident(p.scratch), p.scratch, p.borrower);
    }
    changed += await this.#dropLoginRole(p);
    if (p.ownOwner) changed += await this.#dropMarkedRole(p, p.owner);
    changed += await giveBack(this.#exec, p.borrower);
    if (changed) this.#log.info("Cleaned up after a verification", { changed });
    return changed;
  }

  /** The encoding and locale of database `name`, for a scratch database on another server. */
  async locale(name: string): Promise<st.DatabaseLocale | undefined> {
    const db = await this.#database(name);
    return db && localeOf(db);
  }

  /** Whether a database named `name` exists (the scratch database of a verification). */
  async exists(name: string): Promise<boolean> {
    return (await this.#database(name)) !== undefined;
  }

  /** Drops the replaced (old) database after a successful swap. */
  async dropReplaced(p: RestorePlacement): Promise<number> {
    if (!(await this.swapped(p))) return 0;
    return await this.#exec.dropDatabaseForce(ident(p.replaced), p.replaced, p.borrower);
  }

  async #dropLoginRole(p: RestorePlacement): Promise<number> {
    const heir = (await this.#roleMarker(p.owner)) === undefined ? undefined : ident(p.owner);
    return await this.#dropMarkedRole(p, p.loginRole, heir);
  }

  /** Drops `role` when it carries the placement's marker; what it owns goes to `heir`. */
  async #dropMarkedRole(p: RestorePlacement, role: string, heir?: Ident): Promise<number> {
    if (!sameMarker(await this.#roleMarker(role) ?? undefined, p.restore)) return 0;
    let changed = 0;
    const r = ident(role);
    const owner = heir;
    for (const d of await this.#exec.query((sql) => databasesDependingOn(sql, role))) {
      const db = await this.#database(d);
      if (!db?.allow) continue;
      changed += await this.#exec.apply([
        ...(owner ? [{ sql: st.reassignOwned(r, owner), database: d }] : []),
        { sql: st.dropOwned(r), database: d },
      ]);
    }
    return changed + await this.#exec.apply([{ sql: st.dropRole(r) }]);
  }

  /**
   * Creates the login role (password as `verifier`, a SCRAM verifier) and the scratch database
   * with the target's encoding and locale. Throws TerminalError when the target is missing or
   * the scratch name is taken by something that is not this Restore's.
   */
  async prepare(
    p: RestorePlacement,
    o: { verifier: string; locale?: st.DatabaseLocale },
  ): Promise<void> {
    // With an owner of its own the target is on another server: its locale comes with `o`.
    const target = p.ownOwner ? undefined : await this.#database(p.target);
    const locale = target ? localeOf(target) : o.locale;
    if (!locale) {
      throw new TerminalError(
        "TargetNotFound",
        `Cannot restore into database ${JSON.stringify(p.target)}: it does not exist`,
      );
    }
    if (await this.#database(p.scratch)) {
      throw new TerminalError(
        "ScratchDatabaseTaken",
        `Cannot restore: the scratch database ${JSON.stringify(p.scratch)} exists and was not ` +
          `made by this Restore`,
      );
    }
    const [me] = await this.#exec.query((sql) => sql<{ u: string }[]>`SELECT current_user AS u`);
    const role = ident(p.loginRole);
    const marker = literal(formatMarker(p.restore));
    if (p.ownOwner) await this.#makeOwner(p, { me: me!.u, marker });
    await this.#exec.apply([{
      sql: st.createRole(role, { login: true, connectionLimit: 3, password: literal(o.verifier) }),
      together: [
        st.commentOnRole(role, marker),
        st.grantRole(ident(p.owner), role),
        st.grantRole(role, ident(me!.u)),
      ],
    }]);
    const scratch = ident(p.scratch);
    await this.#exec.apply([{
      sql: st.createDatabaseFromTemplate0(scratch, {
        owner: ident(p.owner),
        locale,
      }),
    }]);
    await this.#exec.apply([{
      sql: st.commentOnDatabase(scratch, marker),
      // Only CONNECT, as the Database controller does: PUBLIC keeps TEMPORARY, as on any
      // database, and the swapped-in database ends up with the same ACL as one it created.
      together: [st.revokeOnDatabase(["CONNECT"], scratch, "PUBLIC")],
    }]);
  }

  /** The placement's own owner role: NOLOGIN, marked, the admin a member (to give it a database). */
  async #makeOwner(p: RestorePlacement, o: { me: string; marker: Literal }): Promise<void> {
    const found = await this.#roleMarker(p.owner);
    if (found !== undefined && !sameMarker(found ?? undefined, p.restore)) {
      throw new TerminalError(
        "ScratchRoleTaken",
        `Cannot restore: the scratch owner role ${JSON.stringify(p.owner)} exists and was not ` +
          `made by ${formatMarker(p.restore)}`,
      );
    }
    const owner = ident(p.owner);
    const grant = st.grantRole(owner, ident(o.me));
    await this.#exec.apply([
      found === undefined
        ? {
          sql: st.createRole(owner, { login: false }),
          together: [st.commentOnRole(owner, o.marker), grant],
        }
        : { sql: grant },
    ]);
  }

  /**
   * After the restore: what the login role created (after a `SET ROLE NONE`) goes to the owner
   * role, then the login role is dropped, before anything is swapped in.
   */
  async releaseLoginRole(p: RestorePlacement): Promise<void> {
    const r = ident(p.loginRole);
    await this.#exec.apply([
      { sql: st.reassignOwned(r, ident(p.owner)), database: p.scratch },
      { sql: st.dropOwned(r), database: p.scratch },
    ]);
    await this.#exec.apply([{ sql: st.dropRole(r) }]);
  }

  /**
   * Swaps the scratch database in: refuse new connections to the target, end its sessions and
   * ours in the scratch database, then rename both in one transaction. On failure the target
   * keeps its name and data and accepts connections again. `requireEmpty` (onConflict: fail)
   * checks the target once more just before.
   */
  async swap(p: RestorePlacement, o: { requireEmpty: boolean }): Promise<void> {
    if (o.requireEmpty) {
      const n = await this.targetObjects(p);
      if (n > 0) throw notEmpty(p.target, n);
    }
    const target = await this.#database(p.target);
    if (!target || !sameMarker(parseMarker(target.comment), p.claim)) {
      throw new TerminalError(
        "TargetNotFound",
        `Cannot swap the restored database in: database ${JSON.stringify(p.target)} ` +
          (target ? `is no longer claimed by ${formatMarker(p.claim)}` : "no longer exists"),
      );
    }
    const t = ident(p.target);
    if (target.allow) await this.#exec.apply([{ sql: st.alterDatabaseAllowConnections(t, false) }]);
    try {
      await borrowSessions(this.#exec, p.borrower, [p.target, p.scratch]);
      const ended = await endSessions(this.#exec, [p.target, p.scratch]);
      // Our own pool's idle sessions there were among them.
      await this.#exec.closeIdleSessions([p.target, p.scratch]);
      if (ended) this.#log.info("Ended sessions before the swap", { sessions: ended });
      const replaced = ident(p.replaced);
      const scratch = ident(p.scratch);
      await this.#exec.apply([{
        sql: st.alterDatabaseRename(t, replaced),
        together: [
          st.commentOnDatabase(replaced, literal(formatMarker(p.restore))),
          st.alterDatabaseRename(scratch, t),
          st.commentOnDatabase(t, literal(formatMarker(p.claim))),
        ],
      }]);
    } catch (e) {
      await this.#exec.apply([{ sql: st.alterDatabaseAllowConnections(t, true) }]).catch(
        (err) => this.#log.warn("Cannot let connections into the target again", { error: err }),
      );
      throw e;
    } finally {
      await giveBack(this.#exec, p.borrower).catch(() => 0);
    }
  }
}

/** TargetNotEmpty, worded once for the check before and the one just before the swap. */
export function notEmpty(database: string, n: number): TerminalError {
  return new TerminalError(
    "TargetNotEmpty",
    `Cannot restore into database ${JSON.stringify(database)}: it is not empty (${n} tables, ` +
      `views, sequences or large objects); use onConflict: drop to replace it`,
  );
}

function localeOf(db: DatabaseRow): st.DatabaseLocale {
  const icu = db.row.datlocprovider === "i"
    ? (db.row.daticulocale ?? db.row.datlocale) as string | null | undefined
    : undefined;
  return {
    encoding: literal(db.encoding),
    lcCollate: literal(db.collate),
    lcCtype: literal(db.ctype),
    ...(icu ? { icuLocale: literal(icu) } : {}),
  };
}
