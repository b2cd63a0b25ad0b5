/**
 * The privilege model against a real PostgreSQL, driven as the NON-superuser admin role
 * (LOGIN CREATEDB CREATEROLE), as on RDS, Aurora and Azure.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotStrictEquals,
  assertRejects,
  assertStrictEquals,
} from "./helpers/assert.ts";
import { PgExecutor } from "../controllers/postgres/execute.ts";
import type { DatabaseSpec } from "../controllers/postgres/plan.ts";
import type { UserSpec } from "../controllers/postgres/plan_user.ts";
import type { PrivilegeLevel } from "../controllers/postgres/names.ts";
import { ServerPool } from "../controllers/postgres/pool.ts";
import { generatePassword, scramVerifier } from "../controllers/postgres/scram.ts";
import { type PgServer, startPostgres } from "./helpers/postgres.ts";

const MUTATING = /statement: (CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|REASSIGN)\b/i;

async function mutatingCount(pg: PgServer): Promise<number> {
  const log = await pg.readLog();
  return log.split("\n").filter((l) => l.includes(`${pg.admin.user}@`) && MUTATING.test(l))
    .length;
}

function dbSpec(database: string, extra: Partial<DatabaseSpec> = {}): DatabaseSpec {
  return {
    database,
    marker: { namespace: "team-a", name: database },
    revokePublicConnect: true,
    ...extra,
  };
}

interface TestUser {
  spec: UserSpec;
  password: string;
}

async function user(
  username: string,
  databases: { name: string; level: PrivilegeLevel }[],
): Promise<TestUser> {
  const password = generatePassword(20);
  return {
    password,
    spec: {
      username,
      marker: { namespace: "team-a", name: username },
      databases,
      passwordVerifier: await scramVerifier(password),
    },
  };
}

/** Same spec without a new password: what a steady-state reconcile sends. */
/** A pool that connects as the test server's (non-superuser) admin, as the operator does. */
function adminPool(pg: PgServer): ServerPool {
  return new ServerPool({
    host: pg.host,
    port: pg.port,
    user: pg.admin.user,
    password: pg.admin.password,
    sslMode: "disable",
  });
}

function steady(u: TestUser): UserSpec {
  const { passwordVerifier: _, ...rest } = u.spec;
  return rest;
}

Deno.test("privilege model against a real server as a non-superuser admin", async (t) => {
  await using pg = await startPostgres();
  const pool = adminPool(pg);
  const ex = new PgExecutor(pool);
  const as = (u: TestUser, sql: string, database = "app") =>
    pg.psql(sql, { user: u.spec.username, password: u.password, database });
  try {
    const ro = await user("app_ro", [{ name: "app", level: "readonly" }]);
    const rw = await user("app_rw", [{ name: "app", level: "readwrite" }]);
    const adm = await user("app_adm", [{ name: "app", level: "admin" }]);
    const otherUser = await user("other_rw", [{ name: "other", level: "readwrite" }]);

    await t.step("databases and users are created", async () => {
      await ex.ensureDatabase(dbSpec("app"));
      await ex.ensureDatabase(dbSpec("other"));
      for (const u of [ro, rw, adm, otherUser]) await ex.ensureUser(u.spec);
      const owner = await pg.superSql(
        "SELECT pg_get_userbyid(datdba), shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'app'",
      );
      assertStrictEquals(owner.trim(), "app_owner|dbtether:team-a/app");
      const login = await as(ro, "SELECT current_user");
      assertStrictEquals(login.code, 0, login.stderr);
      assert(
        await ex.verifyLogin({ user: "app_ro", password: ro.password }, { database: "app" }),
      );
      assert(!(await ex.verifyLogin({ user: "app_ro", password: "wrong-password" })));
    });

    await t.step(
      "a table created later by an admin user is usable by readonly and readwrite",
      async () => {
        const r = await as(adm, "CREATE TABLE items (id serial PRIMARY KEY, name text)");
        assertStrictEquals(r.code, 0, r.stderr);
        const owner = await pg.superSql(
          "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'items'",
          { database: "app" },
        );
        assertStrictEquals(
          owner.trim(),
          "app_owner",
          "objects of admin users belong to the owner role",
        );
        const ins = await as(rw, "INSERT INTO items (name) VALUES ('a') RETURNING id");
        assertStrictEquals(ins.code, 0, ins.stderr);
        const sel = await as(ro, "SELECT name FROM items");
        assertStrictEquals(sel.stdout.trim(), "a");
      },
    );

    await t.step("readonly cannot INSERT, readwrite cannot CREATE TABLE", async () => {
      const ins = await as(ro, "INSERT INTO items (name) VALUES ('x')");
      assertNotStrictEquals(ins.code, 0);
      assertMatch(ins.stderr, /permission denied/);
      const create = await as(rw, "CREATE TABLE rw_table (id int)");
      assertNotStrictEquals(create.code, 0);
      assertMatch(create.stderr, /permission denied for schema public/);
    });

    await t.step("a user of database A cannot connect to database B", async () => {
      const r = await as(ro, "SELECT 1", "other");
      assertNotStrictEquals(r.code, 0);
      assertMatch(r.stderr, /permission denied for database "other"/);
      const back = await as(otherUser, "SELECT 1", "app");
      assertNotStrictEquals(back.code, 0);
      assertStrictEquals((await as(otherUser, "SELECT 1", "other")).code, 0);
    });

    await t.step("existing tables get grants when a database is reconciled again", async () => {
      // Made by the superuser as app_owner, bypassing default privileges of nobody else.
      await pg.superSql(
        "SET ROLE app_owner; ALTER DEFAULT PRIVILEGES FOR ROLE app_owner REVOKE SELECT ON TABLES FROM app_readonly; CREATE TABLE legacy (id int); RESET ROLE",
        { database: "app" },
      );
      assertNotStrictEquals((await as(ro, "SELECT * FROM legacy")).code, 0);
      await ex.ensureDatabase(dbSpec("app"));
      assertStrictEquals((await as(ro, "SELECT * FROM legacy")).code, 0);
    });

    await t.step("running everything again sends no mutating statement", async () => {
      const before = await mutatingCount(pg);
      assert(before > 0);
      let changed = 0;
      changed += (await ex.ensureDatabase(dbSpec("app"))).changed;
      changed += (await ex.ensureDatabase(dbSpec("other"))).changed;
      for (const u of [ro, rw, adm, otherUser]) changed += (await ex.ensureUser(steady(u))).changed;
      const log = (await pg.readLog()).split("\n").filter((l) => MUTATING.test(l));
      assertStrictEquals(await mutatingCount(pg), before, log.slice(-5).join("\n"));
      assertStrictEquals(changed, 0);
    });

    await t.step("downgrading revokes what the old level granted", async () => {
      await ex.ensureUser({ ...steady(rw), databases: [{ name: "app", level: "readonly" }] });
      const ins = await as(rw, "INSERT INTO items (name) VALUES ('y')");
      assertNotStrictEquals(ins.code, 0);
      assertStrictEquals((await as(rw, "SELECT count(*) FROM items")).code, 0);
      await ex.ensureUser({ ...steady(adm), databases: [{ name: "app", level: "readonly" }] });
      const create = await as(adm, "CREATE TABLE adm_table (id int)");
      assertNotStrictEquals(create.code, 0);
      const who = await as(adm, "SELECT current_user");
      assertStrictEquals(who.stdout.trim(), "app_adm", "the role setting is gone");
      const member = await pg.superSql(
        "SELECT count(*) FROM pg_auth_members WHERE member = 'app_adm'::regrole",
      );
      assertStrictEquals(member.trim(), "1", "only app_readonly remains");
      // ...and upgrading again restores it.
      await ex.ensureUser(steady(adm));
      assertStrictEquals((await as(adm, "CREATE TABLE adm_table (id int)")).code, 0);
    });

    await t.step("an unmanaged role and a foreign claim are refused", async () => {
      await pg.psql("CREATE ROLE squatter LOGIN");
      const sq = await user("squatter", [{ name: "app", level: "readonly" }]);
      await assertRejects(() => ex.ensureUser(sq.spec), Error, "not created by dbtether");
      await ex.ensureUser({ ...sq.spec, adopt: true, consent: { granted: true, how: "" } });
      assertStrictEquals((await as(sq, "SELECT 1")).code, 0);
      const stolen = { ...dbSpec("app"), marker: { namespace: "team-b", name: "app" } };
      await assertRejects(() => ex.ensureDatabase(stolen), Error, "belongs to dbtether:team-a/app");
    });

    await t.step("a second owner is refused", async () => {
      const o1 = await user("app_owner_user", [{ name: "app", level: "owner" }]);
      const o2 = await user("app_owner_user2", [{ name: "app", level: "owner" }]);
      await ex.ensureUser(o1.spec);
      await assertRejects(() => ex.ensureUser(o2.spec), Error, "is its owner already");
      assertStrictEquals((await as(o1, "CREATE TABLE by_owner (id int)")).code, 0);
    });

    await t.step("deleting a user who owns tables reassigns them to the owner role", async () => {
      // An admin user may step out of the owner role and create objects of its own.
      const r = await as(
        adm,
        "RESET ROLE; CREATE TABLE own_table (id int); INSERT INTO own_table VALUES (1)",
      );
      assertStrictEquals(r.code, 0, r.stderr);
      assertStrictEquals(
        (await as(ro, "SELECT * FROM own_table")).code,
        0,
        "fallback default privileges",
      );
      await ex.dropUser(adm.spec);
      const roles = await pg.superSql("SELECT count(*) FROM pg_roles WHERE rolname = 'app_adm'");
      assertStrictEquals(roles.trim(), "0");
      const owner = await pg.superSql(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'own_table'",
        { database: "app" },
      );
      assertStrictEquals(owner.trim(), "app_owner");
    });

    await t.step("Retain makes the role NOLOGIN", async () => {
      await ex.retainUser(rw.spec);
      assertNotStrictEquals((await as(rw, "SELECT 1")).code, 0);
      const login = await pg.superSql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_rw'");
      assertStrictEquals(login.trim(), "f");
    });

    await t.step("Retain of a database removes only the claim", async () => {
      await ex.releaseDatabase({ database: "other", marker: dbSpec("other").marker });
      assertStrictEquals(await ex.claimOf("other"), null);
      assertStrictEquals((await as(otherUser, "SELECT 1", "other")).code, 0);
    });

    await t.step("Delete drops a database with open sessions of other users", async () => {
      const sleeper = as(ro, "SELECT pg_sleep(30)");
      for (let i = 0; i < 50; i++) {
        const n = await pg.superSql(
          "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_ro' AND datname = 'app'",
        );
        if (n.trim() === "1") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await ex.dropDatabase({ database: "app", marker: dbSpec("app").marker });
      assertNotStrictEquals((await sleeper).code, 0, "the session was terminated");
      // Given back: the admin has app_ro's privileges no more (on 16+ it stays a member with
      // ADMIN OPTION only, from creating the role), and no borrow role is left.
      const borrowed = await pg.superSql(
        `SELECT pg_has_role('${pg.admin.user}', 'app_ro', 'USAGE'),
                (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'dbtether\\_borrow\\_%')`,
      );
      assertStrictEquals(borrowed.trim(), "f|0", "the admin gave back the membership it borrowed");
      const left = await pg.superSql(
        "SELECT count(*) FROM pg_database WHERE datname = 'app'",
      );
      assertStrictEquals(left.trim(), "0");
    });

    await t.step("no plaintext password in the server log", async () => {
      const log = await pg.readLog();
      for (const u of [ro, rw, adm, otherUser]) assert(!log.includes(u.password));
      assertMatch(log, /PASSWORD 'SCRAM-SHA-256\$4096:/);
    });
  } finally {
    await pool.close();
  }
});

Deno.test("hostile names round-trip exactly and change nothing else", async () => {
  await using pg = await startPostgres();
  const pool = adminPool(pg);
  const ex = new PgExecutor(pool);
  const snapshot = async () =>
    new Set(
      (await pg.superSql(
        "SELECT 'r:' || rolname FROM pg_roles UNION ALL SELECT 'd:' || datname FROM pg_database",
      )).split("\n").filter((l) => l !== ""),
    );
  try {
    const names = [
      "my-app",
      "MyApp",
      'quo"te',
      "with space",
      "x; DROP ROLE dbtether_admin; --",
      "dot.ted",
      "it's",
      "日本語のデータベース名前です", // multibyte
      "é".repeat(31), // 62 bytes
    ];
    const before = await snapshot();
    for (const name of names) {
      await ex.ensureDatabase({
        database: name,
        marker: { namespace: "ns", name: "db" + names.indexOf(name) },
        revokePublicConnect: true,
      });
      const password = generatePassword(16);
      await ex.ensureUser({
        username: name,
        marker: { namespace: "ns", name: "u" + names.indexOf(name) },
        databases: [{ name, level: "admin" }],
        passwordVerifier: await scramVerifier(password),
      });
      const r = await pg.psql("SELECT current_user, session_user, current_database()", {
        user: name,
        password,
        database: name,
      });
      assertStrictEquals(r.code, 0, r.stderr);
      assertStrictEquals(r.stdout.trim().split("|")[1], name);
      assertStrictEquals(r.stdout.trim().split("|")[2], name);
    }
    const logged = await mutatingCount(pg);
    for (const name of names) {
      const i = names.indexOf(name);
      const again = await ex.ensureDatabase({
        database: name,
        marker: { namespace: "ns", name: "db" + i },
        revokePublicConnect: true,
      });
      const user = await ex.ensureUser({
        username: name,
        marker: { namespace: "ns", name: "u" + i },
        databases: [{ name, level: "admin" }],
      });
      assertStrictEquals(
        again.changed + user.changed,
        0,
        `second pass for ${JSON.stringify(name)}`,
      );
    }
    assertStrictEquals(await mutatingCount(pg), logged);
    const after = await snapshot();
    const added = [...after].filter((x) => !before.has(x)).sort();
    const removed = [...before].filter((x) => !after.has(x));
    assertEquals(removed, []);
    const { databaseRoles } = await import("../controllers/postgres/names.ts");
    const expected = names.flatMap((n) => [
      "d:" + n,
      "r:" + n,
      ...Object.values(databaseRoles(n)).map((r) => "r:" + r),
    ]).sort();
    assertEquals(added, expected);
    await assertRejects(
      () =>
        ex.ensureDatabase({
          database: "a".repeat(64),
          marker: { namespace: "ns", name: "long" },
          revokePublicConnect: true,
        }),
      Error,
      "64 bytes long",
    );
    assertEquals(await snapshot(), after, "a rejected name changes nothing");
  } finally {
    await pool.close();
  }
});
