/**
 * The imperative shell around the planners: observe, plan, run. Each method is idempotent: a
 * second call on a converged server sends only catalog queries. Statements are logged redacted.
 */
import { RetryableError, TerminalError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { nullLogger } from "../../lib/log.ts";
import { type Borrower, borrowSessions, giveBack, sessionsBlockedError } from "./borrow.ts";
import {
  databasesDependingOn,
  observeDatabase,
  observeDefaultAcls,
  observeDirectTableGrants,
  observeOwnedTables,
  observeServer,
  type ObserveServerOptions,
  type RoleInfo,
  type ServerSnapshot,
} from "./catalog.ts";
import { databaseRoles, formatMarker, type Marker, parseMarker, sameMarker } from "./names.ts";
import { createdByUs, roleMarkerOf } from "./claims.ts";
import { type DatabaseSpec, planDatabaseInside, planDatabaseServer } from "./plan.ts";
import { optionDifferences } from "./plan_database_options.ts";
import {
  observeSchemaDefaultAcls,
  observeSchemaGrants,
  observeSchemas,
  rolesMarked,
  schemasWithDefaultsOf,
} from "./catalog_schemas.ts";
import { type OwnerRoleState, planSchemas, type SchemaWait } from "./plan_schemas.ts";
import { planSchemaGrants, rolesOfSchemas, type SchemaDefaultAcl } from "./plan_schema_grants.ts";
import {
  planUserInside,
  planUserServer,
  RDS_IAM_ROLE,
  type UserDatabaseSnapshot,
  userMarker,
  type UserSpec,
} from "./plan_user.ts";
import { planUserRelease, type UserRelease } from "./plan_user_release.ts";
import type { ServerPool, Sql } from "./pool.ts";
import { type Ident, ident, userIdent } from "./quote.ts";
import * as st from "./statements.ts";
import type { Statement } from "./statements.ts";
import { unreachableCodes } from "../../lib/network.ts";
import { TokenError } from "./iam.ts";

/** Reasons of failures mapped from the driver, declared once. */
export const PG_FAILURE_REASONS = [
  "ClusterUnreachable",
  "AuthenticationFailed",
  "PermissionDenied",
  "SqlFailed",
] as const;
/** A reason of {@link PG_FAILURE_REASONS}. */
export type PgFailureReason = typeof PG_FAILURE_REASONS[number];

/** The network codes, postgres.js's own, and the server's "going away" SQLSTATEs. */
const UNREACHABLE = unreachableCodes(
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "57P01", // admin_shutdown
  "57P03", // cannot_connect_now (starting up, shutting down)
);

/** Maps a driver error to a RetryableError with a reason; `statement` is redacted first. */
export function mapPgError(e: unknown, o: { server: string; statement?: string }): Error {
  if (e instanceof TerminalError || e instanceof RetryableError) return e;
  const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
  const msg = e instanceof Error ? e.message : String(e);
  const what = o.statement === undefined ? `query ${o.server}` : `run ${st.redact(o.statement)}`;
  const reason: PgFailureReason = UNREACHABLE.has(code)
    ? "ClusterUnreachable"
    : code === "28P01" || code === "28000" || e instanceof TokenError
    ? "AuthenticationFailed"
    : code === "42501"
    ? "PermissionDenied"
    : "SqlFailed";
  const detail = reason === "ClusterUnreachable" ? `server ${o.server} unreachable (${msg})` : msg;
  return new RetryableError(reason, `Cannot ${what}: ${detail}`, { cause: e });
}

/**
 * What a dry run collects instead of sending (`dbtether plan`): the mutating statements in
 * order, and what could not be planned yet (inside a database that does not exist).
 */
export interface DryRun {
  statements: Statement[];
  notes: string[];
  /**
   * Roles a dry run planned to create, shared by the dry runs of one plan: a Database's roles
   * are seen by the plan of its users as the server would have them once the Database is made.
   */
  planned?: Map<string, RoleInfo>;
}

/** IN SCHEMA default privileges where the user has some or may create (plan_user.ts). */
async function userSchemaDefaults(
  sql: Sql,
  user: string,
  d: UserSpec["databases"][number],
): Promise<{ schema: string; acls: SchemaDefaultAcl[] }[]> {
  const schemas = new Set([
    ...(d.schemas ?? []).filter((s) => s.level === "admin").map((s) => s.name),
    ...await schemasWithDefaultsOf(sql, user),
  ]);
  const out = [];
  for (const schema of schemas) {
    out.push({ schema, acls: await observeSchemaDefaultAcls(sql, schema) });
  }
  return out;
}

/** Options of {@link PgExecutor}. */
export interface ExecutorOptions {
  logger?: Logger;
  signal?: AbortSignal;
  /**
   * Collect the statements instead of running them; the catalog is still read. Use with a
   * read-only pool, so that the server refuses a write that would slip through.
   */
  dryRun?: DryRun;
}

/** Result of an ensure/delete call: how many mutating statements it sent. */
export interface ExecResult {
  changed: number;
  /** ensureUser: what ran, redacted (passwords never appear), for the drift Event. */
  statements?: string[];
}

/** Runs plans against one server through its pool. */
export class PgExecutor {
  readonly #pool: ServerPool;
  readonly #log: Logger;
  readonly #signal: AbortSignal | undefined;
  readonly #dryRun: DryRun | undefined;

  constructor(pool: ServerPool, opts: ExecutorOptions = {}) {
    this.#pool = pool;
    this.#log = opts.logger ?? nullLogger;
    this.#signal = opts.signal;
    this.#dryRun = opts.dryRun;
  }

  /** Closes this pool's idle connections to `databases`, whose sessions were just ended. */
  closeIdleSessions(databases: readonly string[]): Promise<void> {
    return this.#pool.closeIdle(databases);
  }

  #run<T>(fn: (sql: Sql) => Promise<T>, database?: string): Promise<T> {
    const opts = {
      ...(database === undefined ? {} : { database }),
      ...(this.#signal === undefined ? {} : { signal: this.#signal }),
    };
    return this.#pool.run(fn, opts).catch((e) => {
      throw mapPgError(e, { server: this.#pool.endpoint });
    });
  }

  /** Runs a read-only catalog query (bind parameters) on `database` (default maintenance). */
  query<T>(fn: (sql: Sql) => Promise<T>, database?: string): Promise<T> {
    return this.#run(fn, database);
  }

  /**
   * Runs statements in order, each in autocommit (CREATE DATABASE cannot run in a transaction),
   * except a statement's `together` group, which commits with it in one transaction.
   */
  async apply(statements: readonly Statement[]): Promise<number> {
    if (this.#dryRun) {
      this.#dryRun.statements.push(...statements);
      return statements.length;
    }
    for (const s of statements) {
      const parts = [s.sql, ...(s.together ?? [])];
      for (const p of parts) {
        this.#log.info("sql", { statement: st.redact(p), database: s.database ?? null });
      }
      await this.#pool.run(async (sql) => {
        try {
          if (parts.length === 1) await sql.unsafe(s.sql);
          else {
            await sql.begin(async (tx) => {
              for (const p of parts) await tx.unsafe(p);
            });
          }
        } catch (e) {
          throw mapPgError(e, { server: this.#pool.endpoint, statement: s.sql });
        }
      }, s.database === undefined ? {} : { database: s.database }).catch((e) => {
        throw mapPgError(e, { server: this.#pool.endpoint });
      });
    }
    return statements.length;
  }

  /** `SHOW server_version` in its short form ("15.4"). */
  async serverVersion(): Promise<string> {
    const rows = await this.#run((sql) => sql<{ v: string }[]>`SHOW server_version`);
    const v = rows[0]?.v ?? "";
    return /^\d+(\.\d+)?/.exec(v)?.[0] ?? v;
  }

  /** The claim marker of a database: undefined when it does not exist, null when unclaimed. */
  async claimOf(database: string): Promise<Marker | null | undefined> {
    const snap = await this.#observe({ roles: [], database });
    if (!snap.database) return undefined;
    return parseMarker(snap.database.comment) ?? null;
  }

  async #observe(o: ObserveServerOptions): Promise<ServerSnapshot> {
    const snap = await this.#run((sql) => observeServer(sql, o));
    for (const [name, info] of this.#dryRun?.planned ?? []) {
      if (o.roles.includes(name) && !snap.roles.has(name)) snap.roles.set(name, info);
    }
    return snap;
  }

  /**
   * Reads inside `database`. In a dry run the database may not exist yet (its CREATE DATABASE
   * was only collected): then nothing is read, a note says so, and undefined is returned.
   */
  async #inside<T>(fn: (sql: Sql) => Promise<T>, database: string): Promise<T | undefined> {
    if (this.#dryRun) {
      const rows = await this.#run((sql) =>
        sql<{ n: number }[]>`SELECT 1 AS n FROM pg_database WHERE datname = ${database}`
      );
      if (!rows.length) {
        this.#dryRun.notes.push(
          `Statements inside database ${JSON.stringify(database)} are planned once it exists`,
        );
        return undefined;
      }
    }
    return await this.#run(fn, database);
  }

  /**
   * Creates or adopts the database, its roles and privileges; idempotent. `differences`: the
   * creation options of the spec an existing database does not have (reported, not changed);
   * `waitingSchemas`: declared schemas whose DatabaseUser owner cannot own them yet.
   */
  async ensureDatabase(
    spec: DatabaseSpec,
  ): Promise<ExecResult & { differences: string[]; waitingSchemas?: SchemaWait[] }> {
    const roles = databaseRoles(spec.database);
    const schemaNames = (spec.schemas ?? []).map((s) => s.name);
    const all = [...Object.values(roles), ...rolesOfSchemas(spec.database, schemaNames)];
    const snap = await this.#observe({
      roles: all,
      database: spec.database,
      ...(spec.forceAdopt && spec.consent?.granted
        ? {
          adoptable: {
            roles: all,
            marker: formatMarker(roleMarkerOf(spec.marker, "Database")),
          },
        }
        : {}),
    });
    let changed = await this.apply(planDatabaseServer(spec, snap));
    const differences = snap.database ? optionDifferences(spec.options ?? {}, snap.database) : [];
    // Nobody, dbtether included, may connect: what is inside waits until it is allowed again.
    if (spec.options?.allowConnections === false) return { changed, differences };
    const comment = formatMarker(roleMarkerOf(spec.marker, "Database"));
    for (const name of Object.values(roles)) {
      if (snap.roles.has(name)) continue;
      const info = { name, canLogin: false, connectionLimit: -1, superuser: false, comment };
      this.#dryRun?.planned?.set(name, info);
    }
    // A dry run cannot read inside a database whose roles it only planned to create.
    if (this.#dryRun && Object.values(roles).some((r) => !snap.roles.has(r))) {
      this.#dryRun.notes.push(
        `Statements inside database ${
          JSON.stringify(spec.database)
        } are planned once the database and its roles exist`,
      );
      return { changed, differences };
    }
    const observedSchemas = await this.#inside(observeSchemas, spec.database);
    if (observedSchemas === undefined) return { changed, differences };
    const owners = await this.#schemaOwnerRoles(spec);
    const schemas = planSchemas({
      database: spec.database,
      marker: spec.marker,
      schemas: spec.schemas ?? [],
      publicSchema: spec.publicSchema ?? "keep",
      forceAdopt: spec.forceAdopt === true,
      consent: spec.consent,
      ownerRoles: owners,
      admin: snap.currentUser,
    }, observedSchemas);
    changed += await this.apply(schemas.ensure);
    const inside = await this.#run(
      (sql) => observeDatabase(sql, roles),
      spec.database,
    );
    // A DatabaseUser that owns a schema creates there as itself: the groups get what it makes
    // (the user planner keeps the same defaults while the Database names it, plan_user.ts).
    const creators = [...inside.creators, ...schemas.owners];
    changed += await this.apply(planDatabaseInside(spec, { ...inside, creators }));
    const grants = await this.#run(
      (sql) => observeSchemaGrants(sql, { database: spec.database, schemas: schemaNames }),
      spec.database,
    );
    changed += await this.apply(planSchemaGrants({
      database: spec.database,
      creators: [roles.owner, ...creators],
    }, grants));
    changed += await this.apply(schemas.remove);
    return { changed, differences, waitingSchemas: schemas.waiting };
  }

  /** The roles of the DatabaseUsers that `spec`'s schemas name as owners, as observed. */
  async #schemaOwnerRoles(spec: DatabaseSpec): Promise<Map<string, OwnerRoleState>> {
    const names = (spec.schemas ?? []).flatMap((s) =>
      typeof s.owner !== "string" && s.owner.kind === "user" ? [s.owner.role] : []
    );
    const out = new Map<string, OwnerRoleState>();
    if (!names.length) return out;
    const snap = await this.#observe({ roles: names });
    for (const [name, info] of snap.roles) {
      out.set(name, { comment: info.comment, adminHas: snap.adminInherits.has(name) });
    }
    return out;
  }

  /** deletionPolicy Retain: removes the claim, keeps the database, its roles and data. */
  async releaseDatabase(spec: { database: string; marker: Marker }): Promise<ExecResult> {
    const snap = await this.#observe({ roles: [], database: spec.database });
    if (!snap.database || !sameMarker(parseMarker(snap.database.comment), spec.marker)) {
      return { changed: 0 };
    }
    return {
      changed: await this.apply([{ sql: st.commentOnDatabase(ident(spec.database), null) }]),
    };
  }

  /**
   * deletionPolicy Delete: ends the sessions and drops the database, then its roles. The admin
   * is not superuser: it may terminate only sessions of roles whose privileges it has (PG15), so
   * when `WITH (FORCE)` is refused it borrows the other sessions' roles (borrow.ts) and gives
   * them back afterwards; what a killed process borrowed is given back by the next call.
   */
  async dropDatabase(spec: { database: string; marker: Marker }): Promise<ExecResult> {
    const borrower: Borrower = {
      kind: "Database",
      namespace: spec.marker.namespace,
      name: spec.marker.name,
    };
    let changed = await giveBack(this, borrower);
    const roles = databaseRoles(spec.database);
    const snap = await this.#observe({ roles: Object.values(roles), database: spec.database });
    const db = userIdent(spec.database, { adminRole: snap.currentUser });
    if (snap.database) {
      const claim = parseMarker(snap.database.comment);
      // Only a database this resource claims (or created and had no time to mark) is dropped.
      if (!sameMarker(claim, spec.marker) && !createdByUs(spec.database, spec.marker, snap)) {
        throw new TerminalError(
          claim ? "DatabaseClaimedByOther" : "DatabaseExistsUnmanaged",
          `Cannot drop database ${JSON.stringify(spec.database)}: it ${
            claim ? `belongs to ${formatMarker(claim)}` : "was not created by dbtether"
          }`,
        );
      }
      if (snap.database.allowConnections) {
        changed += await this.apply([{ sql: st.alterDatabaseAllowConnections(db, false) }]);
      }
      // The server refuses to drop a template database.
      if (snap.database.isTemplate) {
        changed += await this.apply([{ sql: st.alterDatabaseIsTemplate(db, false) }]);
      }
      changed += await this.dropDatabaseForce(db, spec.database, borrower);
    }
    const want = { kind: "Database", namespace: spec.marker.namespace, name: spec.marker.name };
    // The groups of its schemas carry the same marker; they held privileges only in the database.
    const groups = await this.#run((sql) => rolesMarked(sql, formatMarker(want)));
    const schemaGroups = groups.filter((r) => !Object.values(roles).includes(r));
    for (const r of schemaGroups) changed += await this.apply([{ sql: st.dropRole(ident(r)) }]);
    for (const r of [roles.admin, roles.readwrite, roles.readonly, roles.owner]) {
      const info = snap.roles.get(r);
      if (info && sameMarker(parseMarker(info.comment), want)) {
        changed += await this.apply([{ sql: st.dropRole(ident(r)) }]);
      }
    }
    return { changed };
  }

  /**
   * `DROP DATABASE ... WITH (FORCE)`; when the server refuses to end other roles' sessions,
   * borrows those roles for `borrower`, drops, and gives them back.
   */
  async dropDatabaseForce(db: Ident, name: string, borrower: Borrower): Promise<number> {
    try {
      return await this.apply([{ sql: st.dropDatabase(db, { force: true }) }]);
    } catch (e) {
      if (!(e instanceof RetryableError) || e.reason !== "PermissionDenied") throw e;
    }
    const { borrowed, blocked } = await borrowSessions(this, borrower, [name]);
    try {
      return borrowed.length + await this.apply([{ sql: st.dropDatabase(db, { force: true }) }]);
    } catch (e) {
      const denied = e instanceof RetryableError && e.reason === "PermissionDenied";
      if (denied && blocked.length) {
        throw sessionsBlockedError(`drop database ${JSON.stringify(name)}`, blocked, e);
      }
      throw e;
    } finally {
      // The memberships were only needed to end those sessions.
      if (borrowed.length) await giveBack(this, borrower);
    }
  }

  /** Creates or updates a login role and its privileges in each of its databases; idempotent. */
  async ensureUser(spec: UserSpec): Promise<ExecResult> {
    const names = spec.databases.flatMap((d) => [
      ...Object.values(databaseRoles(d.name)),
      ...rolesOfSchemas(d.name, (d.schemas ?? []).map((s) => s.name)),
    ]);
    const adoptable = spec.adopt && spec.consent?.granted
      ? { adoptable: { roles: [spec.username], marker: formatMarker(userMarker(spec)) } }
      : {};
    names.push(...(spec.memberOf?.roles ?? []), RDS_IAM_ROLE);
    const snap = await this.#observeUser(spec.username, { names, ...adoptable });
    if (spec.authentication === "azureEntra" && !snap.roles.has(spec.username)) {
      // Sessions run with search_path pg_catalog (slot.ts): the function is looked up by
      // name, and only one a superuser owns (Azure's azuresu does) is called, schema-qualified,
      // so a function of that name someone else created is never run as the admin.
      const schema = await this.#run(async (sql) => {
        const [row] = await sql<{ schema: string }[]>`
          SELECT n.nspname AS schema
          FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
          JOIN pg_roles o ON o.oid = p.proowner
          WHERE p.proname = ${st.ENTRA_PRINCIPAL_FUNCTION}
            AND p.proargtypes = '25 16 16'::oidvector AND o.rolsuper
          ORDER BY n.nspname LIMIT 1`;
        return row?.schema;
      });
      if (schema !== undefined) snap.entraFunction = schema;
    }
    const server = planUserServer(spec, snap);
    let changed = await this.apply(server);
    const ran = server.flatMap((s) => [s.sql, ...(s.together ?? [])]);
    for (const d of spec.databases) {
      const inside = await this.#observeInside(spec.username, d);
      if (!inside) continue;
      const statements = planUserInside(spec, d, inside);
      changed += await this.apply(statements);
      ran.push(...statements.map((s) => s.sql));
    }
    return { changed, statements: ran.map(st.redact) };
  }

  /**
   * The snapshot for a login role and `o.names`, with the roles it is a member of now (their
   * comments say which are dbtether's, so what a former level granted is revoked).
   */
  async #observeUser(
    username: string,
    o: Pick<ObserveServerOptions, "adoptable"> & { names: readonly string[] },
  ): Promise<ServerSnapshot> {
    const { names, ...adoptable } = o;
    const first = await this.#observe({ roles: [username, ...names], ...adoptable });
    const current = first.memberships.filter((m) => m.member === username).map((m) => m.role);
    const extra = current.filter((r) => !first.roles.has(r));
    return extra.length
      ? await this.#observe({ roles: [username, ...names, ...extra], ...adoptable })
      : first;
  }

  #observeInside(
    username: string,
    d: UserSpec["databases"][number],
  ): Promise<UserDatabaseSnapshot | undefined> {
    return this.#inside(async (sql) => ({
      defaultAcls: await observeDefaultAcls(sql),
      directGrants: await observeDirectTableGrants(sql, username),
      owned: await observeOwnedTables(sql, username),
      schemaDefaults: await userSchemaDefaults(sql, username, d),
    }), d.name);
  }

  /**
   * gcpIam, deletionPolicy Delete: revokes what dbtether granted the role (plan_user_release.ts)
   * and keeps the role. Nothing when it is gone or not this resource's; idempotent.
   */
  async releaseUser(r: UserRelease): Promise<ExecResult> {
    const snap = await this.#observeUser(r.username, { names: r.memberOf });
    const plan = planUserRelease(r, snap);
    if (!plan) return { changed: 0 };
    let changed = 0;
    for (const d of plan.databases) {
      // A database dropped meanwhile took the role's grants there with it.
      const db = (await this.#observe({ roles: [], database: d.name })).database;
      if (!db?.allowConnections) continue;
      const inside = await this.#observeInside(r.username, d);
      if (inside) changed += await this.apply(planUserInside(plan.nothing, d, inside));
    }
    changed += await this.apply(plan.server);
    changed += await this.apply([plan.unmark]);
    return { changed };
  }

  /** deletionPolicy Retain: the role stays with its grants, but cannot log in. */
  async retainUser(spec: Pick<UserSpec, "username" | "marker">): Promise<ExecResult> {
    const snap = await this.#observe({ roles: [spec.username] });
    const info = snap.roles.get(spec.username);
    if (!info || !info.canLogin || !this.#owns(spec, info.comment)) return { changed: 0 };
    return { changed: await this.apply([{ sql: st.alterRoleLogin(ident(spec.username), false) }]) };
  }

  #owns(spec: Pick<UserSpec, "marker">, comment: string | null): boolean {
    return sameMarker(parseMarker(comment), userMarker(spec as UserSpec));
  }

  /**
   * deletionPolicy Delete: in every database where the role owns objects or holds privileges,
   * REASSIGN OWNED to that database's owner role (or to the admin where dbtether has no owner
   * role), then DROP OWNED; then DROP ROLE. A role dbtether did not create is left alone.
   */
  async dropUser(spec: Pick<UserSpec, "username" | "marker">): Promise<ExecResult> {
    const snap = await this.#observe({ roles: [spec.username] });
    const info = snap.roles.get(spec.username);
    if (!info) return { changed: 0 };
    if (!this.#owns(spec, info.comment)) {
      throw new TerminalError(
        "RoleExistsUnmanaged",
        `Cannot drop role ${JSON.stringify(spec.username)}: it was not created by this resource`,
      );
    }
    const u = ident(spec.username);
    let changed = 0;
    if (!snap.adminInherits.has(spec.username)) {
      changed += await this.apply([{ sql: st.grantRole(u, ident(snap.currentUser)) }]);
    }
    const dbs = await this.#run((sql) => databasesDependingOn(sql, spec.username));
    const owners = await this.#observe({ roles: dbs.map((d) => databaseRoles(d).owner) });
    for (const d of dbs) {
      const owner = databaseRoles(d).owner;
      const to = owners.roles.has(owner) ? owner : snap.currentUser;
      changed += await this.apply([
        { sql: st.reassignOwned(u, ident(to)), database: d },
        { sql: st.dropOwned(u), database: d },
      ]);
    }
    changed += await this.apply([{ sql: st.dropRole(u) }]);
    return { changed };
  }

  /** Whether `user` can log in with `password` (checked before a rotated Secret is written). */
  async verifyLogin(
    login: { user: string; password: string },
    opts: { database?: string } = {},
  ): Promise<boolean> {
    try {
      await this.#pool.withLogin(login, (sql) => sql`SELECT 1`, {
        ...(opts.database === undefined ? {} : { database: opts.database }),
        ...(this.#signal === undefined ? {} : { signal: this.#signal }),
      });
      return true;
    } catch (e) {
      const mapped = mapPgError(e, { server: this.#pool.endpoint });
      if (mapped instanceof RetryableError && mapped.reason === "AuthenticationFailed") {
        return false;
      }
      throw mapped;
    }
  }
}
