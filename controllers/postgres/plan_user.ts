/**
 * Pure planners for login roles (DatabaseUser): attributes, password verifier, memberships by
 * privilege level, role settings, fallback default privileges and additional grants.
 */
import { RetryableError, TerminalError } from "../../lib/errors.ts";
import type { DefaultAcl, DirectGrant, ServerSnapshot } from "./catalog.ts";
import {
  type DatabaseRoles,
  databaseRoles,
  formatMarker,
  type Marker,
  parseMarker,
  type PrivilegeLevel,
  schemaRoles,
} from "./names.ts";
import {
  ADOPT_ANNOTATION,
  type AdoptionConsent,
  claimRole,
  refuse,
  roleMarkerOf,
} from "./claims.ts";
import { planDefaults } from "./plan.ts";
import type { SchemaDefaultAcl } from "./plan_schema_grants.ts";
import {
  adminSchemas,
  planSearchPathResets,
  planSearchPaths,
  planUserSchemaDefaults,
} from "./plan_user_schemas.ts";
import {
  catalogIdent,
  type Ident,
  ident,
  literal,
  parseTableName,
  qualified,
  userIdent,
} from "./quote.ts";
import {
  checkMemberOf,
  type MemberOfSpec,
  planValidUntil,
  revokesExtra,
} from "./plan_user_roles.ts";
import * as st from "./statements.ts";
import { type Statement, TABLE_PRIVILEGES, type TablePrivilege } from "./statements.ts";

/** One database of a DatabaseUser. */
export interface UserDatabase {
  name: string;
  /** "none": no database-wide level, only `schemas`. */
  level: PrivilegeLevel | "none";
  /** Privileges per declared schema (the schema's group roles, plan_schema_grants.ts). */
  schemas?: readonly { name: string; level: "readonly" | "readwrite" | "admin" }[];
  /**
   * Schemas its role owns (the Database's spec.schemas[].owner.databaseUser): it creates there
   * as itself, so its default privileges give the groups what it makes, as for a schema admin.
   */
  ownedSchemas?: readonly string[];
  additionalGrants?: readonly {
    tables: readonly string[];
    privileges: readonly TablePrivilege[];
  }[];
  /** `databases[].settings`: as UserSpec.settings, `ALTER ROLE … IN DATABASE` this one. */
  settings?: Readonly<Record<string, string>>;
}

/** What a DatabaseUser wants for one login role. */
export interface UserSpec {
  username: string;
  /** Marker of the resource; the role's comment gets it with kind `DatabaseUser` unless set. */
  marker: Marker;
  databases: readonly UserDatabase[];
  /** false for deletionPolicy Retain after deletion. Default true. */
  login?: boolean;
  /** -1 for no limit. */
  connectionLimit?: number;
  idleInTransactionTimeoutMs?: number;
  /**
   * spec.settings: names from ROLE_SETTINGS, values as text; the other names of the list are
   * reset. Absent: the role's settings are left as they are.
   */
  settings?: Readonly<Record<string, string>>;
  /**
   * Setting names the DBCluster adds to ROLE_SETTINGS (`spec.allowedRoleSettings`), with its
   * name for the reason. They are managed like the built-in ones.
   */
  extraSettings?: { names: readonly string[]; cluster: string };
  /** VALID UNTIL: an ISO 8601 time or "infinity"; undefined leaves the role's as it is. */
  validUntil?: string;
  /** Memberships in roles outside dbtether; undefined leaves those memberships alone. */
  memberOf?: MemberOfSpec;
  /** A SCRAM verifier to set now (creation, rotation); never a plaintext password. */
  passwordVerifier?: string;
  /**
   * `dbtether.io/adopt`: take over an existing role that no resource claims. Needs `consent`,
   * and the role must reach nothing outside the namespace (adoption.ts).
   */
  adopt?: boolean;
  /** The platform team's consent to adoption; absent means not granted. */
  consent?: AdoptionConsent;
  /** Other login roles of the same resource (Alternating rotation) allowed to share ownership. */
  siblings?: readonly string[];
  /** How the app logs in (DatabaseUser spec.authentication.type); default password. */
  authentication?: UserAuthentication;
  /**
   * IAM types: the role may still have a password (the record held one, or the user was a
   * password user): set PASSWORD NULL. PostgreSQL shows no one but a superuser whether a role
   * has a password, so the caller says.
   */
  clearPassword?: boolean;
}

/** How the app logs in as a user. */
export type UserAuthentication = "password" | "awsIam" | "azureEntra" | "gcpIam";

/** The role RDS gives IAM login to (a member logs in only with an IAM token). */
export const RDS_IAM_ROLE = "rds_iam";

/**
 * Whether the server can do what `auth` needs, before anything is planned: awsIam needs the
 * role rds_iam and the admin holding it WITH ADMIN OPTION (RDS's master user does); azureEntra
 * needs Azure's pgaadauth_create_principal when the role is still to be created.
 */
export function checkAuthentication(
  spec: Pick<UserSpec, "username" | "authentication">,
  snap: ServerSnapshot,
): void {
  const name = JSON.stringify(spec.username);
  const unavailable = (why: string): never => {
    throw new RetryableError("IamNotAvailable", `Cannot make ${name} an IAM user: ${why}`);
  };
  switch (spec.authentication ?? "password") {
    case "awsIam":
      if (!snap.roles.has(RDS_IAM_ROLE)) {
        unavailable(`the server has no role ${RDS_IAM_ROLE} (it is not Amazon RDS or Aurora)`);
      }
      if (!snap.adminOf?.has(RDS_IAM_ROLE)) {
        unavailable(
          `the admin role ${
            JSON.stringify(snap.currentUser)
          } does not hold ${RDS_IAM_ROLE} WITH ADMIN OPTION (the RDS master user does)`,
        );
      }
      return;
    case "azureEntra":
      if (!snap.roles.has(spec.username) && snap.entraFunction === undefined) {
        unavailable(
          "the server has no function pgaadauth_create_principal(text, boolean, boolean) " +
            "owned by a superuser (it is not Azure Database for PostgreSQL with Microsoft " +
            "Entra authentication enabled)",
        );
      }
      return;
    case "gcpIam":
      if (!snap.roles.has(spec.username)) {
        throw new RetryableError(
          "IamUserNotFound",
          `Waiting for role ${name}: Cloud SQL creates IAM users through its admin API ` +
            `(gcloud sql users create ... --type=cloud_iam_user or cloud_iam_service_account); ` +
            `dbtether manages only the grants of an IAM user that exists`,
        );
      }
      return;
    case "password":
      return;
  }
}

export function userMarker(spec: UserSpec): Marker {
  return spec.marker.kind === undefined ? roleMarkerOf(spec.marker, "DatabaseUser") : spec.marker;
}

/** Memberships (role → with ADMIN OPTION) a level gives in one database. */
export function levelMemberships(
  level: PrivilegeLevel | "none",
  roles: DatabaseRoles,
): Map<string, boolean> {
  switch (level) {
    case "none":
      return new Map();
    case "readonly":
      return new Map([[roles.readonly, false]]);
    case "readwrite":
      return new Map([[roles.readwrite, false]]);
    case "admin":
      return new Map([[roles.admin, false], [roles.owner, false]]);
    case "owner":
      return new Map([
        [roles.admin, true],
        [roles.owner, true],
        [roles.readwrite, true],
        [roles.readonly, true],
      ]);
  }
}

const actsAsOwner = (level: PrivilegeLevel | "none") => level === "admin" || level === "owner";

const IDLE = "idle_in_transaction_session_timeout";

/**
 * Checks that the existing role `spec.username` is this resource's or may be adopted (claims.ts);
 * returns the COMMENT that claims it, if any. Throws the refusal otherwise. Pure, so a caller can
 * refuse before it sends anything (a PostgresDatabase checks its role before its database).
 */
export function checkUserClaim(
  spec: Pick<UserSpec, "username" | "marker" | "adopt" | "consent">,
  snap: ServerSnapshot,
): string[] {
  const info = snap.roles.get(spec.username);
  if (!info) return [];
  if (info.superuser) {
    refuse("RoleIsSuperuser", `Cannot manage role ${JSON.stringify(spec.username)}: superuser`);
  }
  return claimRole(spec.username, snap, {
    want: userMarker(spec as UserSpec),
    adopt: spec.adopt === true,
    consent: spec.consent,
    annotation: ADOPT_ANNOTATION,
  });
}

/** Server-level statements for a login role: attributes, password, memberships, settings. */
export function planUserServer(spec: UserSpec, snap: ServerSnapshot): Statement[] {
  const u = userIdent(spec.username, { adminRole: snap.currentUser });
  // Refused before anything is planned: a setting nobody allowed changes nothing.
  const allowed = checkSettings(spec);
  const want = userMarker(spec);
  const login = spec.login ?? true;
  const limit = spec.connectionLimit ?? -1;
  const verifier = spec.passwordVerifier === undefined ? undefined : literal(spec.passwordVerifier);
  const out: string[] = [];
  let create: Statement | undefined;
  const info = snap.roles.get(spec.username);
  const auth = spec.authentication ?? "password";
  checkAuthentication(spec, snap);
  if (!info && auth === "azureEntra") {
    // Azure creates the role (LOGIN, mapped to the principal); the rest converges next pass.
    create = {
      sql: st.createEntraPrincipal(catalogIdent(snap.entraFunction!), literal(spec.username)),
      together: [st.commentOnRole(u, literal(formatMarker(want)))],
    };
  } else if (!info) {
    if (login && verifier === undefined && auth === "password") {
      throw new Error(`Cannot create role ${JSON.stringify(spec.username)}: no password given`);
    }
    // One transaction: a crash between CREATE ROLE and its marker would leave a role that every
    // later reconcile refuses as not ours (RoleExistsUnmanaged), so the user never converges.
    create = {
      sql: st.createRole(u, {
        login,
        connectionLimit: limit,
        ...(verifier === undefined ? {} : { password: verifier }),
        ...(spec.validUntil === undefined ? {} : { validUntil: literal(spec.validUntil) }),
      }),
      together: [st.commentOnRole(u, literal(formatMarker(want)))],
    };
  } else {
    out.push(...checkUserClaim(spec, snap));
    if (info.canLogin !== login) out.push(st.alterRoleLogin(u, login));
    if (info.connectionLimit !== limit) out.push(st.alterRoleConnectionLimit(u, limit));
    if (auth !== "password" && verifier !== undefined) {
      throw new TerminalError("InvalidAuthentication", "An IAM user gets no password");
    }
    if (verifier !== undefined) out.push(st.alterRolePassword(u, verifier));
    if (auth !== "password" && spec.clearPassword) out.push(st.alterRolePasswordNull(u));
    out.push(...planValidUntil(u, spec.validUntil, info));
  }
  const settings = snap.settings.get(spec.username);
  const idle = settings?.get("")?.get(IDLE);
  const wantIdle = spec.idleInTransactionTimeoutMs === undefined
    ? undefined
    : String(spec.idleInTransactionTimeoutMs);
  if (wantIdle !== undefined && idle !== wantIdle) {
    out.push(st.setRoleConfig(u, { setting: IDLE, value: literal(wantIdle) }));
  } else if (wantIdle === undefined && idle !== undefined) {
    out.push(st.resetRoleConfig(u, { setting: IDLE }));
  }
  // Managed only once spec.settings is there: a setting made by hand before stays until then.
  if (spec.settings) {
    out.push(...planRoleSettings(u, spec.settings, settings?.get(""), undefined, allowed));
  }
  for (const d of spec.databases) {
    if (d.settings) {
      out.push(
        ...planRoleSettings(u, d.settings, settings?.get(d.name), ident(d.name), allowed),
      );
    }
  }
  out.push(...planMemberships(spec, snap));
  return [...(create ? [create] : []), ...out.map((sql) => ({ sql }))];
}

/**
 * The setting names this user may manage: ROLE_SETTINGS and those its DBCluster adds. A name in
 * spec.settings or a database's settings outside them is refused (SettingNotAllowed), naming
 * the DBCluster field that would allow it.
 */
export function checkSettings(spec: UserSpec): string[] {
  const extra = (spec.extraSettings?.names ?? []).filter((n) => !st.settingNameProblem(n));
  const allowed = [...new Set([...st.ROLE_SETTINGS, ...extra])];
  const asked = [
    ...Object.keys(spec.settings ?? {}),
    ...spec.databases.flatMap((d) => Object.keys(d.settings ?? {})),
  ];
  for (const name of asked) {
    if (allowed.includes(name)) continue;
    const problem = st.settingNameProblem(name);
    refuse(
      "SettingNotAllowed",
      `Cannot set ${JSON.stringify(name)} on role ${JSON.stringify(spec.username)}: ` +
        (problem ??
          `it is not in the built-in list, and DBCluster ${
            JSON.stringify(spec.extraSettings?.cluster ?? "")
          } does not list it in spec.allowedRoleSettings`),
    );
  }
  return allowed;
}

/**
 * SET for each wanted setting whose value differs on the server, RESET for each allowed one
 * set there and not wanted (by hand, or no longer in the spec). Names outside ROLE_SETTINGS
 * are never touched (the CRD refuses them; a name given here anyway is ignored).
 */
export function planRoleSettings(
  u: Ident,
  want: Readonly<Record<string, string>>,
  have: ReadonlyMap<string, string> | undefined,
  database?: Ident,
  allowed: readonly string[] = st.ROLE_SETTINGS,
): string[] {
  const out: string[] = [];
  const inDb = database === undefined ? {} : { database };
  // The server stores some names in their canonical case (TimeZone, DateStyle).
  const current = new Map([...(have ?? [])].map(([k, v]) => [k.toLowerCase(), v]));
  for (const name of allowed) {
    const w = Object.hasOwn(want, name) ? want[name] : undefined;
    const h = current.get(name);
    if (w !== undefined && h !== w) {
      out.push(st.setRoleConfig(u, { ...inDb, setting: name, value: literal(w) }));
    } else if (w === undefined && h !== undefined) {
      out.push(st.resetRoleConfig(u, { ...inDb, setting: name }));
    }
  }
  return out;
}

/**
 * Memberships of the login role by the spec (levels, schemas, memberOf, rds_iam), with the `role`
 * and search_path settings that go with them. A membership the spec does not want is revoked when
 * it is in a dbtether group, or (memberOf given) in a role outside dbtether the admin can grant.
 */
export function planMemberships(spec: UserSpec, snap: ServerSnapshot): string[] {
  const u = ident(spec.username);
  const desired = new Map<string, boolean>();
  const ownerRoles = new Map<string, string>(); // database → owner role, for admin levels
  let createsAsItself = false; // admin in a schema: default privileges FOR ROLE u
  for (const d of spec.databases) {
    const roles = databaseRoles(d.name);
    for (const r of Object.values(roles)) {
      if (!snap.roles.has(r)) {
        throw new RetryableError(
          "DatabaseNotReady",
          `Cannot grant access to database ${JSON.stringify(d.name)}: role ${r} does not exist yet`,
        );
      }
    }
    for (const [r, admin] of levelMemberships(d.level, roles)) {
      desired.set(r, (desired.get(r) ?? false) || admin);
    }
    for (const s of d.schemas ?? []) {
      const group = schemaRoles(d.name, s.name)[s.level];
      if (!snap.roles.has(group)) {
        throw new RetryableError(
          "DatabaseNotReady",
          `Cannot grant access to schema ${JSON.stringify(s.name)} of database ${
            JSON.stringify(d.name)
          }: it is not declared in the Database's spec.schemas (role ${group} does not exist)`,
        );
      }
      if (!desired.has(group)) desired.set(group, false);
    }
    if (adminSchemas(d).length) createsAsItself = true;
    if (actsAsOwner(d.level)) ownerRoles.set(d.name, roles.owner);
    if (d.level === "owner") {
      const others = snap.memberships.filter((m) =>
        m.role === roles.owner && m.adminOption && m.member !== spec.username &&
        m.member !== snap.currentUser && !(spec.siblings ?? []).includes(m.member)
      );
      if (others.length) {
        refuse(
          "OwnerExists",
          `Cannot make ${JSON.stringify(spec.username)} owner of database ${
            JSON.stringify(d.name)
          }` +
            `: ${JSON.stringify(others[0]!.member)} is its owner already`,
        );
      }
    }
  }
  // Refused before anything is planned: a refused memberOf changes nothing.
  for (const r of spec.memberOf ? checkMemberOf(spec.username, spec.memberOf, snap) : []) {
    if (!desired.has(r)) desired.set(r, false);
  }
  if (spec.authentication === "awsIam") desired.set(RDS_IAM_ROLE, false);
  const out: string[] = [];
  // Settings first: a `role` setting must go before the membership that makes it valid.
  const settings = snap.settings.get(spec.username) ?? new Map<string, Map<string, string>>();
  for (const [db, kv] of settings) {
    const current = kv.get("role");
    if (db === "" || current === undefined) continue;
    const wantRole = ownerRoles.get(db);
    if (wantRole === undefined && isDbtetherRole(snap, current)) {
      out.push(st.resetRoleConfig(u, { database: catalogIdent(db), setting: "role" }));
    }
  }
  out.push(...planSearchPathResets(spec, { settings, memberships: snap.memberships }));
  const mine = snap.memberships.filter((m) => m.member === spec.username);
  for (const m of mine) {
    const want = desired.get(m.role);
    if (want === undefined) {
      if (
        isDbtetherRole(snap, m.role) || revokesExtra(m.role, spec.memberOf, snap) ||
        leftIam(spec, m.role, snap)
      ) {
        out.push(st.revokeRole(catalogIdent(m.role), u));
      }
    } else if (m.adminOption && !want) {
      out.push(st.revokeRole(catalogIdent(m.role), u, { adminOptionOnly: true }));
    }
  }
  for (const [role, admin] of desired) {
    const have = mine.find((m) => m.role === role);
    if (!have || (admin && !have.adminOption)) {
      out.push(st.grantRole(ident(role), u, { adminOption: admin }));
    }
  }
  for (const [db, owner] of ownerRoles) {
    if (settings.get(db)?.get("role") !== owner) {
      out.push(
        st.setRoleConfig(u, { database: ident(db), setting: "role", value: literal(owner) }),
      );
    }
  }
  // ALTER DEFAULT PRIVILEGES FOR ROLE u, and REASSIGN/DROP OWNED on deletion, need the admin to
  // have u's privileges.
  out.push(...planSearchPaths(spec, settings));
  if ((ownerRoles.size > 0 || createsAsItself) && !snap.adminInherits.has(spec.username)) {
    out.push(st.grantRole(u, ident(snap.currentUser)));
  }
  return out;
}

/**
 * rds_iam of a user that is no longer awsIam: RDS lets a member of rds_iam log in only with a
 * token, so the password in its Secret would not work. Kept when memberOf lists it.
 */
function leftIam(spec: UserSpec, role: string, snap: ServerSnapshot): boolean {
  return role === RDS_IAM_ROLE && spec.authentication !== "awsIam" &&
    snap.adminOf?.has(role) === true && !(spec.memberOf?.roles ?? []).includes(role);
}

/** Roles dbtether created for a Database (their comment carries the `Database` marker). */
function isDbtetherRole(snap: ServerSnapshot, role: string): boolean {
  return parseMarker(snap.roles.get(role)?.comment)?.kind === "Database";
}

/** Observed state inside one database of a user. */
export interface UserDatabaseSnapshot {
  defaultAcls: readonly DefaultAcl[];
  /** Privileges granted directly to the user on tables and views, with grantor and owner. */
  directGrants: readonly DirectGrant[];
  /** Tables and views the user owns: it holds every privilege on them already. */
  owned: readonly { schema: string; name: string }[];
  /** Default privileges IN SCHEMA (any role's) of the schemas the user has them in or wants. */
  schemaDefaults?: readonly { schema: string; acls: readonly SchemaDefaultAcl[] }[];
}

/**
 * The direct grants dbtether manages for a user: those recorded with the table's owner as
 * grantor (dbtether grants through the owner's rights, so PostgreSQL records the owner), on
 * tables the user does not own. The owner's own entries and grants made by anyone else are
 * never touched.
 */
export function managedGrants(user: string, grants: readonly DirectGrant[]): DirectGrant[] {
  return grants.filter((g) =>
    g.owner !== user && g.grantor === g.owner &&
    (TABLE_PRIVILEGES as readonly string[]).includes(g.privilege)
  );
}

type TableGrants = { schema: string; name: string; privs: Set<string> };

/** Statements inside one database for a user: fallback default privileges, additional grants. */
export function planUserInside(
  spec: UserSpec,
  db: UserDatabase,
  snap: UserDatabaseSnapshot,
): Statement[] {
  const roles = databaseRoles(db.name);
  const own = adminSchemas(db);
  const action = actsAsOwner(db.level) || own.length ? "GRANT" : "REVOKE";
  const out = planDefaults(spec.username, roles, snap.defaultAcls, action);
  out.push(...planUserSchemaDefaults(spec.username, {
    db,
    schemaDefaults: snap.schemaDefaults ?? [],
  }));
  const u = ident(spec.username);
  const key = (schema: string, name: string) => JSON.stringify([schema, name]);
  const owned = new Set(snap.owned.map((t) => key(t.schema, t.name)));
  const want = new Map<string, TableGrants>();
  for (const g of db.additionalGrants ?? []) {
    for (const t of g.tables) {
      const ref = parseTableRef(t);
      const k = key(ref.schema, ref.name);
      // Granting to the owner changes nothing (it holds every privilege), so it would be sent
      // again on every reconcile.
      if (owned.has(k)) continue;
      const entry = want.get(k) ?? { ...ref, privs: new Set<string>() };
      for (const p of g.privileges) entry.privs.add(p);
      want.set(k, entry);
    }
  }
  const have = new Map<string, TableGrants>();
  for (const g of managedGrants(spec.username, snap.directGrants)) {
    const k = key(g.schema, g.name);
    const entry = have.get(k) ?? { schema: g.schema, name: g.name, privs: new Set<string>() };
    entry.privs.add(g.privilege);
    have.set(k, entry);
  }
  for (const [k, h] of have) {
    const extra = [...h.privs].filter((p) => !want.get(k)?.privs.has(p)).sort();
    if (extra.length) {
      out.push(st.revokeOnTables(extra as TablePrivilege[], [catalogTable(h)], u));
    }
  }
  for (const [k, w] of want) {
    const missing = [...w.privs].filter((p) => !have.get(k)?.privs.has(p)).sort();
    if (missing.length) out.push(st.grantOnTables(missing as TablePrivilege[], [tableIdent(w)], u));
  }
  return out.map((sql) => ({ sql, database: db.name }));
}

function parseTableRef(t: string): { schema: string; name: string } {
  const ref = parseTableName(t);
  return { schema: ref.schema ?? "public", name: ref.name };
}

function tableIdent(t: { schema: string; name: string }): Ident {
  return qualified(ident(t.schema), ident(t.name));
}

function catalogTable(t: { schema: string; name: string }): Ident {
  return qualified(catalogIdent(t.schema), catalogIdent(t.name));
}
