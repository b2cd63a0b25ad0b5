import { assertEquals } from "../../tests/helpers/assert.ts";
import type { RoleInfo, ServerSnapshot } from "./catalog.ts";
import { planRoleSettings, planUserServer, type UserSpec } from "./plan_user.ts";
import { planValidUntil } from "./plan_user_roles.ts";
import { ident } from "./quote.ts";

const GROUPS = ["app_owner", "app_readonly", "app_readwrite", "app_admin"];

function role(name: string, o: Partial<RoleInfo> = {}): RoleInfo {
  return {
    name,
    canLogin: false,
    connectionLimit: -1,
    superuser: false,
    comment: "dbtether:Database/ns/app",
    ...o,
  };
}

/** A server of major `major` where svc is Ready with readwrite on app. */
function snapshot(major: number, extra: RoleInfo[] = []): ServerSnapshot {
  const roles = new Map(GROUPS.map((r) => [r, role(r)]));
  roles.set("svc", role("svc", { canLogin: true, comment: "dbtether:DatabaseUser/ns/svc" }));
  roles.set("admin", role("admin", { canLogin: true, comment: null }));
  for (const r of extra) roles.set(r.name, r);
  return {
    currentUser: "admin",
    versionNum: major * 10000,
    roles,
    memberships: [{ role: "app_readwrite", member: "svc", adminOption: false }],
    adminInherits: new Set(),
    adminOf: new Set([...GROUPS, ...extra.map((r) => r.name)]),
    settings: new Map(),
  };
}

const predefined = (name: string) => role(name, { comment: null });

function spec(o: Partial<UserSpec> = {}): UserSpec {
  return {
    username: "svc",
    marker: { namespace: "ns", name: "svc" },
    databases: [{ name: "app", level: "readwrite" }],
    ...o,
  };
}

const sqlOf = (s: UserSpec, snap: ServerSnapshot) => planUserServer(s, snap).map((x) => x.sql);

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return `${(e as { reason?: string }).reason}: ${(e as Error).message}`;
  }
  return "";
}

const grantable = (roles: string[], allowed: string[]) => ({
  memberOf: { roles, grantable: allowed, cluster: "main" },
});

Deno.test("memberOf: grants what the DBCluster allows, revokes what is no longer listed", async (t) => {
  for (const major of [13, 14, 16, 18]) {
    await t.step(`PostgreSQL ${major}`, () => {
      const snap = snapshot(major, [predefined("pg_monitor"), predefined("pg_signal_backend")]);
      assertEquals(sqlOf(spec(grantable(["pg_monitor"], ["pg_monitor"])), snap), [
        'GRANT "pg_monitor" TO "svc"',
      ]);
      snap.memberships.push({ role: "pg_monitor", member: "svc", adminOption: false });
      assertEquals(sqlOf(spec(grantable(["pg_monitor"], ["pg_monitor"])), snap), []);
      // Removed from the list, or granted by hand while memberOf is managed: revoked.
      snap.memberships.push({ role: "pg_signal_backend", member: "svc", adminOption: false });
      assertEquals(sqlOf(spec(grantable([], ["pg_monitor"])), snap), [
        'REVOKE "pg_monitor" FROM "svc"',
        'REVOKE "pg_signal_backend" FROM "svc"',
      ]);
      // memberOf absent: memberships outside dbtether are left alone.
      assertEquals(sqlOf(spec(), snap), []);
    });
  }
});

Deno.test("memberOf: every refusal names the role and why, before any statement", async (t) => {
  const cases: [string, ServerSnapshot, string[], string[], string][] = [
    [
      "not listed in grantableRoles",
      snapshot(18, [predefined("pg_write_server_files")]),
      ["pg_write_server_files"],
      ["pg_monitor"],
      'DBCluster "main" does not list it in spec.grantableRoles (it lists pg_monitor)',
    ],
    [
      "default: none grantable",
      snapshot(18, [predefined("pg_monitor")]),
      ["pg_monitor"],
      [],
      'DBCluster "main" does not list it in spec.grantableRoles (it lists none)',
    ],
    [
      "pg_read_all_data on 13 (from 14 only)",
      snapshot(13),
      ["pg_read_all_data"],
      ["pg_read_all_data"],
      "it does not exist on this server (PostgreSQL 13)",
    ],
    [
      "the admin role itself",
      snapshot(18),
      ["admin"],
      ["admin"],
      "it is the admin role dbtether connects as",
    ],
    [
      "another tenant's group role",
      snapshot(18, [role("other_owner", { comment: "dbtether:Database/other/x" })]),
      ["other_owner"],
      ["other_owner"],
      "it is a role managed by dbtether",
    ],
    [
      "a superuser",
      snapshot(18, [predefined("root")].map((r) => ({ ...r, superuser: true }))),
      ["root"],
      ["root"],
      "it is a superuser",
    ],
    [
      "a login role",
      snapshot(18, [role("bob", { canLogin: true, comment: null })]),
      ["bob"],
      ["bob"],
      "it is a login role",
    ],
  ];
  for (const [name, snap, roles, allowed, detail] of cases) {
    await t.step(name, () => {
      const msg = refusal(() => sqlOf(spec(grantable(roles, allowed)), snap));
      assertEquals(
        msg,
        `RoleNotGrantable: Cannot make "svc" a member of ${JSON.stringify(roles[0])}: ${detail}`,
      );
    });
  }
  await t.step("the admin lacks ADMIN OPTION (rds_superuser-like group member)", () => {
    const snap = snapshot(16, [predefined("rds_superuser")]);
    snap.adminOf!.delete("rds_superuser");
    assertEquals(
      refusal(() => sqlOf(spec(grantable(["rds_superuser"], ["rds_superuser"])), snap)),
      'RoleNotGrantable: Cannot make "svc" a member of "rds_superuser": the admin role ' +
        '"admin" does not hold it WITH ADMIN OPTION',
    );
  });
  await t.step("a role the admin cannot grant is not revoked either", () => {
    const snap = snapshot(16, [predefined("pg_monitor")]);
    snap.adminOf!.delete("pg_monitor");
    snap.memberships.push({ role: "pg_monitor", member: "svc", adminOption: false });
    assertEquals(sqlOf(spec(grantable([], [])), snap), []);
  });
});

Deno.test("validUntil: CREATE ROLE … VALID UNTIL, ALTER when it differs by a second or more", () => {
  const u = ident("svc");
  const at = "2027-01-01T00:00:00.000Z";
  const ms = Date.parse(at);
  assertEquals(planValidUntil(u, at, { validUntilMs: null }), [
    `ALTER ROLE "svc" VALID UNTIL '2027-01-01T00:00:00.000Z'`,
  ]);
  assertEquals(planValidUntil(u, at, { validUntilMs: ms + 0.4 }), []);
  assertEquals(planValidUntil(u, at, { validUntilMs: ms + 3_600_000 }).length, 1);
  assertEquals(planValidUntil(u, "infinity", { validUntilMs: null }), []);
  assertEquals(planValidUntil(u, "infinity", { validUntilMs: Infinity }), []);
  assertEquals(planValidUntil(u, "infinity", { validUntilMs: ms }), [
    `ALTER ROLE "svc" VALID UNTIL 'infinity'`,
  ]);
  // Unset: left as it is, whatever a DBA set.
  assertEquals(planValidUntil(u, undefined, { validUntilMs: ms }), []);
  const fresh = snapshot(13);
  fresh.roles.delete("svc");
  assertEquals(
    planUserServer(spec({ validUntil: at, passwordVerifier: "SCRAM-SHA-256$x" }), fresh)[0]!.sql,
    `CREATE ROLE "svc" LOGIN CONNECTION LIMIT -1 PASSWORD 'SCRAM-SHA-256$x' ` +
      `VALID UNTIL '2027-01-01T00:00:00.000Z'`,
  );
});

Deno.test("databases[].settings: ALTER ROLE … IN DATABASE, kept like the role's own", () => {
  const snap = snapshot(18);
  snap.settings.set(
    "svc",
    new Map([
      ["", new Map([["work_mem", "4MB"]])],
      ["app", new Map([["statement_timeout", "0"], ["search_path", "x"], ["jit", "off"]])],
    ]),
  );
  const s = spec({
    databases: [{ name: "app", level: "readwrite", settings: { statement_timeout: "5s" } }],
  });
  // search_path is not in the allow-list: never touched here; the role's own work_mem neither
  // (spec.settings is absent).
  assertEquals(sqlOf(s, snap), [
    `ALTER ROLE "svc" IN DATABASE "app" SET statement_timeout = '5s'`,
    `ALTER ROLE "svc" IN DATABASE "app" RESET jit`,
  ]);
  assertEquals(
    planRoleSettings(ident("svc"), { work_mem: "x'; DROP ROLE svc; --" }, undefined, ident("a")),
    [`ALTER ROLE "svc" IN DATABASE "a" SET work_mem = 'x''; DROP ROLE svc; --'`],
  );
});
