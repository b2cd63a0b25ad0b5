import { assert, assertMatch, assertStrictEquals } from "../../tests/helpers/assert.ts";
import { isPredefinedRole, roleAdoptionProblem } from "./adoption.ts";
import type { ReachedRole, RoleReach } from "./reach.ts";
import { reachedRole as r } from "./fixtures_test_util.ts";

function reach(
  self: Partial<ReachedRole>,
  groups: ReachedRole[] = [],
  dbs = [] as RoleReach["databases"],
) {
  return {
    roles: [r("legacy", { self: true, ...self }), ...groups],
    databases: dbs,
    adminOption: true,
  };
}

Deno.test("roleAdoptionProblem: why a role may not be adopted, or nothing", async (t) => {
  const table: [string, string, RoleReach, string | undefined, RegExp?][] = [
    ["a plain login role", "legacy", reach({}), undefined],
    [
      "the admin role",
      "admin",
      { roles: [r("admin", { self: true })], databases: [], adminOption: true },
      "RoleIsAdmin",
    ],
    ["superuser", "legacy", reach({ superuser: true }), "RoleIsSuperuser"],
    ["CREATEROLE", "legacy", reach({ createRole: true }), "RoleIsPrivileged", /CREATEROLE/],
    ["CREATEDB", "legacy", reach({ createDb: true }), "RoleIsPrivileged", /CREATEDB/],
    ["BYPASSRLS", "legacy", reach({ bypassRls: true }), "RoleIsPrivileged", /BYPASSRLS/],
    ["REPLICATION", "legacy", reach({ replication: true }), "RoleIsPrivileged", /REPLICATION/],
    [
      "a predefined role",
      "pg_monitor",
      { roles: [r("pg_monitor", { self: true })], databases: [], adminOption: true },
      "RoleIsPredefined",
    ],
    ["a managed service's role", "azure_pg_admin", {
      roles: [r("azure_pg_admin", { self: true })],
      databases: [],
      adminOption: true,
    }, "RoleIsPredefined"],
    [
      "member of the admin",
      "legacy",
      reach({}, [r("admin")]),
      "RoleInheritsPrivileges",
      /admin role/,
    ],
    [
      "member of a CREATEROLE role, at depth",
      "legacy",
      reach({}, [r("mid"), r("top", { createRole: true })]),
      "RoleInheritsPrivileges",
      /"top", which has CREATEROLE/,
    ],
    [
      "member of a superuser",
      "legacy",
      reach({}, [r("boss", { superuser: true })]),
      "RoleInheritsPrivileges",
      /SUPERUSER/,
    ],
    [
      "member of pg_read_all_data",
      "legacy",
      reach({}, [r("pg_read_all_data")]),
      "RoleInheritsPrivileges",
      /predefined/,
    ],
    [
      "member of pg_signal_backend",
      "legacy",
      reach({}, [r("pg_signal_backend")]),
      "RoleInheritsPrivileges",
    ],
    [
      "member of rds_superuser",
      "legacy",
      reach({}, [r("rds_superuser")]),
      "RoleInheritsPrivileges",
    ],
    [
      "member of cloudsqlsuperuser",
      "legacy",
      reach({}, [r("cloudsqlsuperuser")]),
      "RoleInheritsPrivileges",
    ],
    [
      "member of another namespace's group role",
      "legacy",
      reach({}, [r("shop_readonly", { comment: "dbtether:Database/team-a/shop" })]),
      "RoleHasForeignAccess",
      /team-a/,
    ],
    [
      "member of its own namespace's group role",
      "legacy",
      reach({}, [r("mine_readonly", { comment: "dbtether:Database/ns/mine" })]),
      undefined,
    ],
    [
      "privileges in another namespace's database",
      "legacy",
      reach({}, [], [{ name: "shop", comment: "dbtether:team-a/shop", ownerComment: null }]),
      "RoleHasForeignAccess",
      /"shop"/,
    ],
    [
      "privileges in a database released by another namespace",
      "legacy",
      reach({}, [], [{ name: "old", comment: null, ownerComment: "dbtether:Database/team-a/old" }]),
      "RoleHasForeignAccess",
    ],
    [
      "privileges in its own namespace's database",
      "legacy",
      reach({}, [], [{ name: "mine", comment: "dbtether:ns/mine", ownerComment: null }]),
      undefined,
    ],
    [
      "privileges in an unmanaged database",
      "legacy",
      reach({}, [], [{ name: "legacy_db", comment: null, ownerComment: null }]),
      undefined,
    ],
  ];
  for (const [name, role, rr, want, message] of table) {
    await t.step(name, () => {
      const p = roleAdoptionProblem(role, rr, { adminRole: "admin", namespace: "ns" });
      assertStrictEquals(p?.reason, want, p?.message ?? "no refusal");
      if (message) assertMatch(p!.message, message);
    });
  }
});

Deno.test("roleAdoptionProblem: on 16+ only roles the admin holds WITH ADMIN OPTION", async (t) => {
  const held = reach({}), notHeld = { ...reach({}), adminOption: false };
  const o = { adminRole: "dbtether admin", namespace: "ns" };
  await t.step("16+: refused, with the GRANT the platform team must run", () => {
    const p = roleAdoptionProblem("legacy", notHeld, { ...o, needsAdminOption: true });
    assertStrictEquals(p?.reason, "AdminOptionMissing");
    assertMatch(p!.message, /^Cannot adopt role "legacy": from PostgreSQL 16 the admin role /);
    assertMatch(
      p!.message,
      /GRANT "legacy" TO "dbtether admin" WITH ADMIN TRUE, INHERIT FALSE, SET FALSE$/,
    );
  });
  await t.step("16+: held, adopted", () => {
    assertStrictEquals(
      roleAdoptionProblem("legacy", held, { ...o, needsAdminOption: true }),
      undefined,
    );
  });
  await t.step("up to 15: no such rule", () => {
    assertStrictEquals(roleAdoptionProblem("legacy", notHeld, o), undefined);
  });
  await t.step("a role refused anyway keeps its own reason", () => {
    const p = roleAdoptionProblem("legacy", { ...reach({ createDb: true }), adminOption: false }, {
      ...o,
      needsAdminOption: true,
    });
    assertStrictEquals(p?.reason, "RoleIsPrivileged");
  });
  await t.step("quotes in names are doubled in the GRANT", () => {
    const p = roleAdoptionProblem('we"ird', notHeld, { ...o, needsAdminOption: true });
    assertMatch(p!.message, /GRANT "we""ird" TO "dbtether admin"/);
  });
});

Deno.test("isPredefinedRole: pg_, rds_ and azure_pg_ roles in any case, not look-alikes", () => {
  for (
    const n of ["pg_read_all_data", "PG_MONITOR", "rds_superuser", "rds_password", "azure_pg_admin"]
  ) {
    assert(isPredefinedRole(n), n);
  }
  for (const n of ["app", "pgadmin", "rdsx", "azure_app"]) assert(!isPredefinedRole(n), n);
});
