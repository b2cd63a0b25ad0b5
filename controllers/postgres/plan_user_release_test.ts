import { assertEquals } from "../../tests/helpers/assert.ts";
import type { Membership, RoleInfo, ServerSnapshot } from "./catalog.ts";
import { planUserRelease, type UserRelease } from "./plan_user_release.ts";

const IAM = "sa@p.iam";
const MARK = "dbtether:DatabaseUser/ns/svc";

function role(name: string, o: Partial<RoleInfo> = {}): RoleInfo {
  return { name, canLogin: false, connectionLimit: -1, superuser: false, comment: null, ...o };
}

const member = (r: string, adminOption = false): Membership => ({
  role: r,
  member: IAM,
  adminOption,
});

/** The IAM user as a converged pass left it, plus what Cloud SQL and a person granted. */
function server(comment: string | null, o: Partial<ServerSnapshot> = {}): ServerSnapshot {
  const groups = ["app_owner", "app_admin", "app_readwrite", "app_readonly"].map((r) =>
    role(r, { comment: "dbtether:Database/ns/app" })
  );
  const roles = [
    ...groups,
    role("app.s_readonly", { comment: "dbtether:Database/ns/app" }),
    role("pg_monitor"),
    role("cloudsqliamserviceaccount"),
    role("by_hand"),
    role(IAM, { canLogin: true, comment }),
  ];
  return {
    currentUser: "admin",
    versionNum: 180000,
    roles: new Map(roles.map((r) => [r.name, r])),
    memberships: [
      member("app_readwrite"),
      member("app.s_readonly"),
      member("pg_monitor"),
      member("cloudsqliamserviceaccount"),
      member("by_hand"),
      { role: IAM, member: "admin", adminOption: true },
    ],
    adminInherits: new Set([IAM]),
    adminOf: new Set(["pg_monitor", "by_hand", ...groups.map((g) => g.name)]),
    settings: new Map([[
      IAM,
      new Map([
        ["", new Map([["statement_timeout", "5s"], ["work_mem", "8MB"]])],
        [
          "app",
          new Map([["lock_timeout", "1s"], ["search_path", "s"], ["role", "app_owner"], [
            "TimeZone",
            "UTC",
          ]]),
        ],
        ["other", new Map([["lock_timeout", "1s"]])],
      ]),
    ]]),
    ...o,
  };
}

const release: UserRelease = {
  username: IAM,
  marker: { namespace: "ns", name: "svc" },
  databases: [{ name: "app", settings: ["lock_timeout"] }],
  settings: ["statement_timeout"],
  memberOf: ["pg_monitor"],
};

const sqlOf = (p: ReturnType<typeof planUserRelease>) =>
  p && [...p.server.map((s) => s.sql), p.unmark.sql];

Deno.test("planUserRelease: revokes what dbtether granted, keeps the role and the rest", async (t) => {
  await t.step("the spec's settings, dbtether's groups and memberOf; the marker last", () => {
    const p = planUserRelease(release, server(MARK));
    assertEquals(sqlOf(p), [
      `ALTER ROLE "sa@p.iam" RESET statement_timeout`,
      `ALTER ROLE "sa@p.iam" IN DATABASE "app" RESET lock_timeout`,
      // The `role` of an admin level, and a search_path listing only the schema whose group it
      // is leaving: dbtether's. TimeZone (by hand, not in the spec) stays.
      `ALTER ROLE "sa@p.iam" IN DATABASE "app" RESET role`,
      `ALTER ROLE "sa@p.iam" IN DATABASE "app" RESET search_path`,
      `REVOKE "app_readwrite" FROM "sa@p.iam"`,
      `REVOKE "app.s_readonly" FROM "sa@p.iam"`,
      `REVOKE "pg_monitor" FROM "sa@p.iam"`,
      `COMMENT ON ROLE "sa@p.iam" IS NULL`,
    ]);
    // Inside the database, the planner of a live user runs with nothing wanted.
    assertEquals(p?.databases, [{ name: "app", level: "none" }]);
    assertEquals(p?.nothing.databases, []);
  });
  await t.step("never DROP, REASSIGN, LOGIN or an attribute; never a GRANT", () => {
    const text = sqlOf(planUserRelease(release, server(MARK)))!.join("\n");
    for (const word of ["DROP", "REASSIGN", "LOGIN", "CONNECTION", "VALID", "GRANT"]) {
      assertEquals(text.includes(word), false, word);
    }
  });
  await t.step("a second pass cut short before the marker: only the marker", () => {
    const done = server(MARK, {
      memberships: [member("cloudsqliamserviceaccount"), member("by_hand")],
      settings: new Map(),
    });
    assertEquals(sqlOf(planUserRelease(release, done)), [`COMMENT ON ROLE "sa@p.iam" IS NULL`]);
  });
  await t.step("released already, another resource's, or gone: nothing", () => {
    assertEquals(planUserRelease(release, server(null)), undefined);
    const thief = { ...release, marker: { namespace: "evil", name: "svc" } };
    assertEquals(planUserRelease(thief, server(MARK)), undefined);
    const gone = server(MARK);
    gone.roles.delete(IAM);
    assertEquals(planUserRelease(release, gone), undefined);
  });
});
