/** Observed roles for unit tests of the planners and the adoption rules. */
import type { ReachedRole, RoleReach } from "./reach.ts";

/** A role in a RoleReach, with no powerful attribute unless given. */
export function reachedRole(name: string, o: Partial<ReachedRole> = {}): ReachedRole {
  return {
    name,
    self: false,
    superuser: false,
    createRole: false,
    createDb: false,
    bypassRls: false,
    replication: false,
    comment: null,
    ...o,
  };
}

/** The reach of a plain role: itself only, no groups, no databases. */
export function plainReach(name: string): RoleReach {
  return { roles: [reachedRole(name, { self: true })], databases: [], adminOption: true };
}
