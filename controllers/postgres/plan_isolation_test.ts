import { assertEquals, assertMatch, assertStrictEquals } from "../../tests/helpers/assert.ts";
import type { IsolationSnapshot, ServerDatabase, ServerRole } from "./catalog.ts";
import { planIsolation } from "./plan_isolation.ts";

function db(name: string, extra: Partial<ServerDatabase> = {}): ServerDatabase {
  return {
    name,
    owner: "cloud_owner",
    comment: null,
    ownerComment: null,
    template: false,
    ownerActable: true,
    publicConnectBy: ["cloud_owner"],
    connect: ["cloud_owner"],
    ...extra,
  };
}

function role(name: string, extra: Partial<ServerRole> = {}): ServerRole {
  return { name, login: true, superuser: false, comment: null, ...extra };
}

const ROLES: ServerRole[] = [
  role("admin"),
  role("legacy"),
  role("app_team", { login: false }),
  role("postgres", { superuser: true }),
  role("shop_readonly", { login: false, comment: "dbtether:Database/ns/shop" }),
  role("shop_ro", { comment: "dbtether:DatabaseUser/ns/shop-ro" }),
  role("old_app", { comment: "dbtether:PostgresDatabase/ns/old" }),
];

const snap = (databases: ServerDatabase[], roles = ROLES): IsolationSnapshot => ({
  currentUser: "admin",
  databases,
  roles,
});

Deno.test("planIsolation", async (t) => {
  await t.step("restricts postgres: grants to unmarked login roles, then revokes PUBLIC", () => {
    const plan = planIsolation(snap([db("postgres")]));
    assertEquals(plan.closed, []);
    assertEquals(plan.blocked, []);
    assertStrictEquals(plan.restrict.length, 1);
    const r = plan.restrict[0]!;
    assertEquals(r.grantees, ["admin", "legacy"], "no NOLOGIN, superuser or marked role");
    assertEquals(r.statement, {
      sql: 'GRANT CONNECT ON DATABASE "postgres" TO "admin", "legacy"',
      together: ['REVOKE CONNECT ON DATABASE "postgres" FROM PUBLIC'],
    });
  });

  await t.step("leaves out templates and databases dbtether manages or is creating", () => {
    const plan = planIsolation(snap([
      db("template1", { template: true }),
      db("shop", { comment: "dbtether:ns/shop" }),
      db("scratch", { comment: "dbtether:Restore/ns/r1" }),
      // Between CREATE DATABASE ... OWNER shop_owner and its COMMENT.
      db("fresh", { owner: "fresh_owner", ownerComment: "dbtether:Database/ns/fresh" }),
    ]));
    assertEquals(plan, { closed: [], restrict: [], blocked: [] });
  });

  await t.step("a database PUBLIC cannot connect to is closed: nothing to send", () => {
    const plan = planIsolation(snap([db("postgres", { publicConnectBy: [] })]));
    assertEquals(plan, { closed: ["postgres"], restrict: [], blocked: [] });
  });

  await t.step("roles with their own CONNECT entry are not granted again", () => {
    const plan = planIsolation(snap([db("hr", { connect: ["cloud_owner", "legacy"] })]));
    assertEquals(plan.restrict[0]!.grantees, ["admin"]);
  });

  await t.step("no one to grant: the revoke alone", () => {
    const plan = planIsolation(snap([db("hr", { connect: ["admin", "legacy"] })]));
    assertEquals(plan.restrict[0]!.statement, {
      sql: 'REVOKE CONNECT ON DATABASE "hr" FROM PUBLIC',
    });
  });

  await t.step("names are quoted, whatever they contain", () => {
    const plan = planIsolation(
      snap([db('we"ird db')], [role("admin"), role('o\'brien "x"'), role("Ünï Côdé")]),
    );
    assertStrictEquals(
      plan.restrict[0]!.statement.sql,
      'GRANT CONNECT ON DATABASE "we""ird db" TO "admin", "o\'brien ""x""", "Ünï Côdé"',
    );
  });

  const blockedCases: {
    name: string;
    db: ServerDatabase;
    roles?: ServerRole[];
    reason: string;
    message: RegExp;
  }[] = [
    {
      name: "owner the admin cannot act for",
      db: db("hr", { owner: "postgres", ownerActable: false }),
      reason: "OwnerNotActable",
      message: /database "hr": its owner "postgres" is a role whose privileges the admin "admin"/,
    },
    {
      name: "PUBLIC's CONNECT granted by another role",
      db: db("hr", { publicConnectBy: ["cloud_owner", "dba"] }),
      reason: "PublicGrantedByOther",
      message: /granted by "dba", not by its owner/,
    },
    {
      name: "a role whose name has a control character",
      db: db("hr"),
      roles: [role("admin"), role("bad\nname")],
      reason: "NameNotSupported",
      message: /the name "bad\\nname" must not contain control characters/,
    },
  ];
  for (const c of blockedCases) {
    await t.step(`reported, not restricted: ${c.name}`, () => {
      const plan = planIsolation(snap([c.db], c.roles));
      assertEquals(plan.restrict, []);
      assertStrictEquals(plan.blocked.length, 1);
      assertStrictEquals(plan.blocked[0]!.reason, c.reason);
      assertMatch(plan.blocked[0]!.message, c.message);
    });
  }
});
