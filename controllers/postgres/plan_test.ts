import assert from "node:assert/strict";
import type { ServerSnapshot } from "./catalog.ts";
import { boundedName, databaseRoles, formatMarker, parseMarker } from "./names.ts";
import { planDatabaseServer } from "./plan.ts";
import { levelMemberships, planUserServer } from "./plan_user.ts";
import { isMutating, redact } from "./statements.ts";
import { utf8Length } from "./quote.ts";

function emptySnapshot(): ServerSnapshot {
  return {
    currentUser: "admin",
    versionNum: 150000,
    roles: new Map(),
    memberships: [],
    adminInherits: new Set(),
    settings: new Map(),
  };
}

Deno.test("planDatabaseServer on an empty server creates roles, database, claim, CONNECT", () => {
  const plan = planDatabaseServer(
    { database: "app", marker: { namespace: "ns", name: "app" }, revokePublicConnect: true },
    emptySnapshot(),
  );
  // Each role commits with its marker, so no interruption leaves an unmarked role behind.
  assert.equal(plan.filter((s) => /^CREATE ROLE/.test(s.sql) && s.together?.length).length, 4);
  const sql = plan.flatMap((s) => [s.sql, ...(s.together ?? [])]);
  assert.deepEqual(sql, [
    'CREATE ROLE "app_owner" NOLOGIN',
    `COMMENT ON ROLE "app_owner" IS 'dbtether:Database/ns/app'`,
    'CREATE ROLE "app_readonly" NOLOGIN',
    `COMMENT ON ROLE "app_readonly" IS 'dbtether:Database/ns/app'`,
    'CREATE ROLE "app_readwrite" NOLOGIN',
    `COMMENT ON ROLE "app_readwrite" IS 'dbtether:Database/ns/app'`,
    'CREATE ROLE "app_admin" NOLOGIN',
    `COMMENT ON ROLE "app_admin" IS 'dbtether:Database/ns/app'`,
    'GRANT "app_owner" TO "admin"',
    'GRANT "app_readonly" TO "app_readwrite"',
    'GRANT "app_readwrite" TO "app_admin"',
    'CREATE DATABASE "app" OWNER "app_owner"',
    `COMMENT ON DATABASE "app" IS 'dbtether:ns/app'`,
    'REVOKE CONNECT ON DATABASE "app" FROM PUBLIC',
    'GRANT CONNECT ON DATABASE "app" TO "app_readonly"',
  ]);
});

Deno.test("planDatabaseServer refuses a database claimed by another resource", () => {
  const snap = emptySnapshot();
  snap.database = {
    name: "app",
    owner: "x",
    comment: "dbtether:other/app",
    allowConnections: true,
    connect: [],
  };
  const spec = {
    database: "app",
    marker: { namespace: "ns", name: "app" },
    revokePublicConnect: true,
  };
  assert.throws(() => planDatabaseServer(spec, snap), (e: unknown) => {
    assert.equal((e as { reason: string }).reason, "DatabaseClaimedByOther");
    return true;
  });
  const adopted = planDatabaseServer({ ...spec, forceAdopt: true }, snap).map((s) => s.sql);
  assert.ok(adopted.includes('ALTER DATABASE "app" OWNER TO "app_owner"'));
  assert.ok(adopted.includes(`COMMENT ON DATABASE "app" IS 'dbtether:ns/app'`));
});

Deno.test("planUserServer refuses an unmanaged role and waits for missing group roles", () => {
  const snap = emptySnapshot();
  snap.roles.set("u", {
    name: "u",
    canLogin: true,
    connectionLimit: -1,
    superuser: false,
    comment: null,
  });
  const spec = { username: "u", marker: { namespace: "ns", name: "u" }, databases: [] };
  assert.throws(() => planUserServer(spec, snap), /was not created by dbtether/);
  assert.throws(
    () =>
      planUserServer(
        { ...spec, adopt: true, databases: [{ name: "db", level: "readonly" }] },
        snap,
      ),
    /does not exist yet/,
  );
});

Deno.test("levelMemberships: each level's group roles", () => {
  const r = databaseRoles("d");
  assert.deepEqual([...levelMemberships("readonly", r)], [["d_readonly", false]]);
  assert.deepEqual([...levelMemberships("readwrite", r)], [["d_readwrite", false]]);
  assert.deepEqual([...levelMemberships("admin", r)], [["d_admin", false], ["d_owner", false]]);
  assert.ok([...levelMemberships("owner", r).values()].every((admin) => admin));
});

Deno.test("names: bounded, deterministic, distinct for long names", () => {
  const long = "x".repeat(60);
  const a = databaseRoles(long);
  assert.ok(utf8Length(a.readwrite) <= 63);
  assert.equal(databaseRoles(long).readwrite, a.readwrite);
  assert.notEqual(databaseRoles(long + "y").readwrite, a.readwrite);
  assert.ok(utf8Length(boundedName("é".repeat(40), "_owner")) <= 63);
  assert.equal(boundedName("short", "_owner"), "short_owner");
});

Deno.test("markers format and parse", () => {
  assert.equal(formatMarker({ namespace: "ns", name: "n" }), "dbtether:ns/n");
  assert.deepEqual(parseMarker("dbtether:ns/n"), { namespace: "ns", name: "n" });
  assert.deepEqual(parseMarker("dbtether:DatabaseUser/ns/n"), {
    kind: "DatabaseUser",
    namespace: "ns",
    name: "n",
  });
  for (const bad of [null, "", "app comment", "dbtether:", "dbtether:a//b", "dbtether:a/b/c/d"]) {
    assert.equal(parseMarker(bad), undefined);
  }
});

Deno.test("redact hides password literals; isMutating classifies statements", () => {
  assert.equal(
    redact(`CREATE ROLE "u" LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi'`),
    `CREATE ROLE "u" LOGIN PASSWORD '<redacted>'`,
  );
  assert.equal(
    redact(`ALTER ROLE "u" password E'it''s\\\\x'`),
    `ALTER ROLE "u" PASSWORD '<redacted>'`,
  );
  assert.ok(isMutating("GRANT x TO y"));
  assert.ok(!isMutating("SELECT 1"));
});

Deno.test("planUserServer creates a role and its marker in one transaction", () => {
  const spec = {
    username: "u",
    marker: { namespace: "ns", name: "u" },
    databases: [],
    passwordVerifier: "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5",
  };
  const [create, ...rest] = planUserServer(spec, emptySnapshot());
  assert.match(create!.sql, /^CREATE ROLE "u" LOGIN/);
  assert.deepEqual(create!.together, [`COMMENT ON ROLE "u" IS 'dbtether:DatabaseUser/ns/u'`]);
  assert.ok(!rest.some((s) => s.sql.startsWith("COMMENT ON ROLE")));
});
