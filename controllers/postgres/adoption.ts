/**
 * Which existing roles may be adopted (taken over by a DatabaseUser, a PostgresDatabase, or a
 * Database claiming its owner and group roles), pure. Adopting a role hands its password and
 * everything it can do to the adopting namespace, so a role is refused when it can do more than
 * act inside that namespace's own databases: powerful attributes, directly or through any role
 * it is a member of (membership allows SET ROLE, so a group's attributes are the member's too);
 * PostgreSQL's predefined roles and the managed services' admin roles, or membership in them;
 * the DBCluster's admin role or membership in it; and ownership or privileges in a database
 * that belongs to another namespace. Consent (DBCluster spec.adoption) is checked before these
 * rules, by the planners.
 */
import type { ReachedRole, RoleReach } from "./reach.ts";
import { formatMarker, parseMarker } from "./names.ts";
import { catalogIdent } from "./quote.ts";

/** Reasons an adoption is refused although the platform team allowed adoption. */
export const ROLE_ADOPTION_REFUSALS = [
  "RoleIsAdmin",
  "RoleIsSuperuser",
  "RoleIsPrivileged",
  "RoleIsPredefined",
  "RoleInheritsPrivileges",
  "RoleHasForeignAccess",
  "AdminOptionMissing",
] as const;
/** A reason of {@link ROLE_ADOPTION_REFUSALS}. */
export type RoleAdoptionRefusal = typeof ROLE_ADOPTION_REFUSALS[number];

/**
 * Roles of the managed services that stand for their admin: membership in any of them is
 * refused like membership in a superuser. `rds_` roles (Amazon RDS and Aurora: rds_superuser,
 * rds_password, rds_replication, rds_iam, ...) are caught by their prefix.
 */
export const PLATFORM_ADMIN_ROLES: readonly string[] = [
  "rdsadmin",
  "rdsrepladmin",
  "azure_pg_admin",
  "azure_superuser",
  "cloudsqlsuperuser",
  "cloudsqladmin",
  "cloudsqlagent",
  "cloudsqlreplica",
  "cloudsqlimportexport",
  "alloydbsuperuser",
  "alloydbadmin",
  "alloydbreplica",
];

/**
 * Every predefined role (`pg_*`: pg_read_all_data, pg_write_all_data, pg_read_server_files,
 * pg_write_server_files, pg_execute_server_program, pg_signal_backend, pg_read_all_stats,
 * pg_monitor, pg_checkpoint, pg_maintain, pg_create_subscription, ...) reaches beyond one
 * database, and new ones come with each major release, so they are refused by prefix rather
 * than by a list that would go stale. Managed-service admin roles likewise.
 */
export function isPredefinedRole(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.startsWith("pg_") || lower.startsWith("rds_") ||
    PLATFORM_ADMIN_ROLES.includes(lower);
}

function attributes(r: ReachedRole): string[] {
  return [
    ...(r.superuser ? ["SUPERUSER"] : []),
    ...(r.createRole ? ["CREATEROLE"] : []),
    ...(r.createDb ? ["CREATEDB"] : []),
    ...(r.bypassRls ? ["BYPASSRLS"] : []),
    ...(r.replication ? ["REPLICATION"] : []),
  ];
}

/** A marker's namespace, or undefined when the comment is not dbtether's. */
function markerNamespace(comment: string | null): string | undefined {
  return parseMarker(comment)?.namespace;
}

/**
 * Why `role` may not be adopted by a resource of `namespace`, or undefined when it may. `reach`
 * is what observeRoleReach read; `adminRole` is the DBCluster's admin; `needsAdminOption` is
 * the server's rule (16+) that the admin changes only roles it holds WITH ADMIN OPTION.
 */
export function roleAdoptionProblem(
  role: string,
  reach: RoleReach,
  o: { adminRole: string; namespace: string; needsAdminOption?: boolean },
): { reason: RoleAdoptionRefusal; message: string } | undefined {
  const cannot = `Cannot adopt role ${JSON.stringify(role)}`;
  if (role === o.adminRole) {
    return { reason: "RoleIsAdmin", message: `${cannot}: it is the DBCluster's admin role` };
  }
  const self = reach.roles.find((r) => r.self);
  if (self?.superuser) {
    return { reason: "RoleIsSuperuser", message: `${cannot}: it is a superuser` };
  }
  const own = self ? attributes(self) : [];
  if (own.length) {
    return {
      reason: "RoleIsPrivileged",
      message: `${cannot}: it has ${own.join(", ")}, which reach beyond its own databases`,
    };
  }
  if (isPredefinedRole(role)) {
    return {
      reason: "RoleIsPredefined",
      message: `${cannot}: it is a predefined role of PostgreSQL or of the managed service`,
    };
  }
  // The most telling reason first: through the admin, then attributes, predefined roles, and
  // only then another namespace's roles (the admin is itself a member of many of those).
  const groups = reach.roles.filter((r) => !r.self);
  const via = (g: ReachedRole) => `${cannot}: it is a member of ${JSON.stringify(g.name)}`;
  const admin = groups.find((g) => g.name === o.adminRole);
  if (admin) {
    return {
      reason: "RoleInheritsPrivileges",
      message: `${via(admin)}, the DBCluster's admin role`,
    };
  }
  const powerful = groups.find((g) => attributes(g).length > 0);
  if (powerful) {
    return {
      reason: "RoleInheritsPrivileges",
      message: `${via(powerful)}, which has ${attributes(powerful).join(", ")}`,
    };
  }
  const predefined = groups.find((g) => isPredefinedRole(g.name));
  if (predefined) {
    return {
      reason: "RoleInheritsPrivileges",
      message: `${via(predefined)}, a predefined role of PostgreSQL or of the managed service`,
    };
  }
  const foreign = groups.find((g) => {
    const ns = markerNamespace(g.comment);
    return ns !== undefined && ns !== o.namespace;
  });
  if (foreign) {
    return {
      reason: "RoleHasForeignAccess",
      message: `${via(foreign)}, which belongs to ${
        formatMarker(parseMarker(foreign.comment)!)
      } in another namespace`,
    };
  }
  for (const d of reach.databases) {
    const claim = markerNamespace(d.comment);
    // A database no resource claims still belongs to the namespace whose roles own it (one
    // released with deletionPolicy Retain keeps its roles and their markers).
    const ns = claim ?? markerNamespace(d.ownerComment);
    if (ns !== undefined && ns !== o.namespace) {
      return {
        reason: "RoleHasForeignAccess",
        message: `${cannot}: it owns objects or holds privileges in database ${
          JSON.stringify(d.name)
        }, which belongs to another namespace`,
      };
    }
  }
  // Last: the platform team should not be asked for a grant that would not be enough.
  if (o.needsAdminOption && !reach.adminOption) return adminOptionMissing(role, o.adminRole);
  return undefined;
}

/**
 * The admin cannot change the role (16+): the platform team grants it to the admin WITH ADMIN
 * OPTION, without INHERIT and SET, the way CREATE ROLE does when createrole_self_grant is unset.
 */
function adminOptionMissing(role: string, admin: string) {
  return {
    reason: "AdminOptionMissing" as const,
    message: `Cannot adopt role ${JSON.stringify(role)}: from PostgreSQL 16 the admin role ` +
      `${JSON.stringify(admin)} may change only roles it holds WITH ADMIN OPTION, and it does ` +
      `not hold this one (a superuser or another role created it); nothing was changed, and it ` +
      `is retried. The platform team must run, as a superuser or as the role's creator: GRANT ${
        catalogIdent(role)
      } TO ` +
      `${catalogIdent(admin)} WITH ADMIN TRUE, INHERIT FALSE, SET FALSE`,
  };
}
