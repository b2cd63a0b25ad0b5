/**
 * Releasing a login role that dbtether manages but did not create (a gcpIam user: Cloud SQL's
 * admin API made it, and only Cloud SQL deletes it): what dbtether granted it is revoked, the
 * role itself stays. Pure; the same planners as a live user's (plan_user.ts) run with a spec
 * that wants nothing, so the revocations are the ones a user whose databases and memberOf were
 * emptied would get.
 *
 * Never REASSIGN OWNED, DROP OWNED or DROP ROLE; attributes (LOGIN, CONNECTION LIMIT, VALID
 * UNTIL) stay as they are; a membership dbtether did not grant (Cloud SQL's own, or one made by
 * hand) stays. The marker comment goes last, so a pass cut short finds the role still marked and
 * revokes the rest; once it is gone the role is not this resource's and nothing is planned.
 */
import type { ServerSnapshot } from "./catalog.ts";
import { roleMarkerOf } from "./claims.ts";
import { type Marker, parseMarker, sameMarker } from "./names.ts";
import {
  planMemberships,
  planRoleSettings,
  type UserDatabase,
  type UserSpec,
} from "./plan_user.ts";
import { catalogIdent, ident, userIdent } from "./quote.ts";
import * as st from "./statements.ts";
import type { Statement } from "./statements.ts";

/** What dbtether gave a role, from the spec of the resource being deleted. */
export interface UserRelease {
  username: string;
  /** Marker of the resource; the role carries it with kind `DatabaseUser` while it is ours. */
  marker: Marker;
  /**
   * The databases it had access to, by their name in PostgreSQL, with the names of the settings
   * the spec set on the role there. One whose name is unknown (its Database is gone) is not
   * listed: its memberships are still revoked, its settings and direct grants are not.
   */
  databases: readonly { name: string; settings: readonly string[] }[];
  /** Names of the settings the spec set on the role server-wide. */
  settings: readonly string[];
  /** spec.memberOf: the roles outside dbtether it was granted. */
  memberOf: readonly string[];
}

/** The release in the order it runs: inside each database, then the server, then the marker. */
export interface ReleasePlan {
  /** A spec that wants nothing of `databases`, for planUserInside. */
  nothing: UserSpec;
  databases: UserDatabase[];
  server: Statement[];
  unmark: Statement;
}

/** The release of `r`'s role, or undefined when the role is gone or not this resource's. */
export function planUserRelease(r: UserRelease, snap: ServerSnapshot): ReleasePlan | undefined {
  const info = snap.roles.get(r.username);
  const marker = roleMarkerOf(r.marker, "DatabaseUser");
  if (!info || !sameMarker(parseMarker(info.comment), marker)) return undefined;
  const u = userIdent(r.username, { adminRole: snap.currentUser });
  const nothing: UserSpec = {
    username: r.username,
    marker,
    databases: [],
    authentication: "gcpIam",
  };
  const have = snap.settings.get(r.username);
  const out = planRoleSettings(u, {}, have?.get(""), undefined, r.settings);
  for (const d of r.databases) {
    out.push(...planRoleSettings(u, {}, have?.get(d.name), catalogIdent(d.name), d.settings));
  }
  // Memberships in dbtether's groups, and the `role` and search_path settings that went with them.
  out.push(...planMemberships(nothing, snap));
  for (const role of r.memberOf) {
    if (snap.memberships.some((m) => m.member === r.username && m.role === role)) {
      out.push(st.revokeRole(ident(role), u));
    }
  }
  return {
    nothing,
    databases: r.databases.map((d) => ({ name: d.name, level: "none" })),
    server: out.map((sql) => ({ sql })),
    unmark: { sql: st.commentOnRole(u, null) },
  };
}
