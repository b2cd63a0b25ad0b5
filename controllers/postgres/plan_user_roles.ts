/**
 * The parts of a login role's plan (plan_user.ts) that follow issue 14's role attributes: its
 * expiry (VALID UNTIL) and its memberships in roles outside
 * dbtether (`memberOf`), which only the DBCluster's `grantableRoles` lets a tenant ask for.
 * Pure; refusals throw before any statement is planned, so a refused spec changes nothing.
 */
import type { RoleInfo, ServerSnapshot } from "./catalog.ts";
import { refuse } from "./claims.ts";
import { parseMarker } from "./names.ts";
import { type Ident, literal } from "./quote.ts";
import * as st from "./statements.ts";

/** `memberOf` of a DatabaseUser with the DBCluster's answer. */
export interface MemberOfSpec {
  roles: readonly string[];
  /** DBCluster `spec.grantableRoles` (none when unset). */
  grantable: readonly string[];
  /** The DBCluster's name, for the reasons. */
  cluster: string;
}

/** Within this, a stored VALID UNTIL is the one wanted (the server keeps microseconds). */
const SAME_TIME_MS = 1000;

const untilMs = (v: string) => v === "infinity" ? Infinity : Date.parse(v);

/**
 * ALTER ROLE … VALID UNTIL when the role's expiry differs from `want` (an ISO 8601 time or
 * "infinity"); nothing when `want` is undefined (the role's expiry is then left as it is).
 */
export function planValidUntil(
  u: Ident,
  want: string | undefined,
  info: Pick<RoleInfo, "validUntilMs"> | undefined,
): string[] {
  if (want === undefined) return [];
  const w = untilMs(want);
  if (Number.isNaN(w)) throw new RangeError(`Invalid VALID UNTIL time: ${want}`);
  const h = info?.validUntilMs ?? Infinity; // NULL: no expiry, as 'infinity'
  if (w === h || Math.abs(w - h) < SAME_TIME_MS) return [];
  return [st.alterRoleValidUntil(u, literal(want))];
}

/**
 * The roles of `memberOf`, each checked: listed in the DBCluster's grantableRoles, present on
 * this server, not a login role, superuser, the admin itself or a role of dbtether (another
 * tenant's group), and held by the admin WITH ADMIN OPTION, so nothing is granted that the admin
 * could not grant by the rules PostgreSQL 16 applies to everyone. Throws RoleNotGrantable.
 */
export function checkMemberOf(user: string, m: MemberOfSpec, snap: ServerSnapshot): string[] {
  const major = Math.floor(snap.versionNum / 10000);
  for (const role of m.roles) {
    const why = (detail: string): never =>
      refuse(
        "RoleNotGrantable",
        `Cannot make ${JSON.stringify(user)} a member of ${JSON.stringify(role)}: ${detail}`,
      );
    if (!m.grantable.includes(role)) {
      why(
        `DBCluster ${JSON.stringify(m.cluster)} does not list it in spec.grantableRoles (${
          m.grantable.length ? `it lists ${m.grantable.join(", ")}` : "it lists none"
        })`,
      );
    }
    const info = snap.roles.get(role);
    if (!info) why(`it does not exist on this server (PostgreSQL ${major})`);
    if (role === snap.currentUser) why("it is the admin role dbtether connects as");
    if (info!.superuser) why("it is a superuser");
    if (info!.canLogin) why("it is a login role");
    if (parseMarker(info!.comment)) why("it is a role managed by dbtether");
    if (!snap.adminOf?.has(role)) {
      why(`the admin role ${JSON.stringify(snap.currentUser)} does not hold it WITH ADMIN OPTION`);
    }
  }
  return [...m.roles];
}

/**
 * Whether a membership of the user in `role` that the spec does not want is revoked: with
 * `memberOf` given, any role outside dbtether that the admin holds WITH ADMIN OPTION (one granted
 * by hand included); roles the admin cannot grant are not its to take away.
 */
export function revokesExtra(role: string, m: MemberOfSpec | undefined, snap: ServerSnapshot) {
  if (!m) return false;
  const info = snap.roles.get(role);
  return info !== undefined && !parseMarker(info.comment) && snap.adminOf?.has(role) === true;
}
