import { assertEquals, assertThrows } from "../../tests/helpers/assert.ts";
import { RetryableError } from "../../lib/errors.ts";
import type { RoleInfo, ServerSnapshot } from "./catalog.ts";
import { planUserServer, type UserSpec } from "./plan_user.ts";

const GROUPS = ["app_owner", "app_readonly", "app_readwrite", "app_admin"];

function role(name: string, o: Partial<RoleInfo> = {}): RoleInfo {
  return { name, canLogin: false, connectionLimit: -1, superuser: false, comment: null, ...o };
}

/** A server with app's group roles, and `more` roles; the admin may grant `grantable`. */
function server(more: RoleInfo[], o: Partial<ServerSnapshot> = {}): ServerSnapshot {
  const roles = new Map(GROUPS.map((r) => [r, role(r, { comment: "dbtether:Database/ns/app" })]));
  for (const r of more) roles.set(r.name, r);
  return {
    currentUser: "admin",
    versionNum: 180000,
    roles,
    memberships: [],
    adminInherits: new Set(),
    adminOf: new Set([...GROUPS, ...more.map((r) => r.name)]),
    settings: new Map(),
    ...o,
  };
}

const spec = (o: Partial<UserSpec>): UserSpec => ({
  username: "svc",
  marker: { namespace: "ns", name: "svc" },
  databases: [{ name: "app", level: "readwrite" }],
  ...o,
});
const sqlOf = (s: UserSpec, snap: ServerSnapshot) =>
  planUserServer(s, snap).flatMap((x) => [x.sql, ...(x.together ?? [])]);
const ours = role("svc", { canLogin: true, comment: "dbtether:DatabaseUser/ns/svc" });
const reason = (f: () => unknown) => {
  const e = assertThrows(f, RetryableError);
  return { reason: e.reason, message: e.message };
};

Deno.test("awsIam: a new role has no password and gets rds_iam", () => {
  assertEquals(sqlOf(spec({ authentication: "awsIam" }), server([role("rds_iam")])), [
    `CREATE ROLE "svc" LOGIN CONNECTION LIMIT -1`,
    `COMMENT ON ROLE "svc" IS 'dbtether:DatabaseUser/ns/svc'`,
    `GRANT "app_readwrite" TO "svc"`,
    `GRANT "rds_iam" TO "svc"`,
  ]);
});

Deno.test("awsIam: an existing password role loses its password only when told", () => {
  const snap = server([role("rds_iam"), ours], {
    memberships: [{ role: "app_readwrite", member: "svc", adminOption: false }],
  });
  assertEquals(sqlOf(spec({ authentication: "awsIam", clearPassword: true }), snap), [
    `ALTER ROLE "svc" PASSWORD NULL`,
    `GRANT "rds_iam" TO "svc"`,
  ]);
  const converged = {
    ...snap,
    memberships: [...snap.memberships, { role: "rds_iam", member: "svc", adminOption: false }],
  };
  assertEquals(sqlOf(spec({ authentication: "awsIam" }), converged), []);
  // Back to password: rds_iam goes (RDS would refuse the password), unless memberOf keeps it.
  assertEquals(sqlOf(spec({ passwordVerifier: "SCRAM-SHA-256$x" }), converged), [
    `ALTER ROLE "svc" PASSWORD 'SCRAM-SHA-256$x'`,
    `REVOKE "rds_iam" FROM "svc"`,
  ]);
});

Deno.test("awsIam: no rds_iam, or no ADMIN OPTION on it: IamNotAvailable before any SQL", () => {
  const none = reason(() => planUserServer(spec({ authentication: "awsIam" }), server([])));
  assertEquals(none.reason, "IamNotAvailable");
  const held = server([role("rds_iam")]);
  held.adminOf!.delete("rds_iam");
  const e = reason(() => planUserServer(spec({ authentication: "awsIam" }), held));
  assertEquals(e, {
    reason: "IamNotAvailable",
    message: `Cannot make "svc" an IAM user: the admin role "admin" does not hold rds_iam ` +
      "WITH ADMIN OPTION (the RDS master user does)",
  });
});

Deno.test("azureEntra: created by pgaadauth_create_principal, the name as a literal", () => {
  const name = `x'); DROP ROLE admin; --`;
  const s = spec({ username: name, authentication: "azureEntra" });
  assertEquals(sqlOf(s, server([], { entraFunction: "public" })), [
    `SELECT * FROM "public".pgaadauth_create_principal('x''); DROP ROLE admin; --', false, false)`,
    `COMMENT ON ROLE "x'); DROP ROLE admin; --" IS 'dbtether:DatabaseUser/ns/svc'`,
    `GRANT "app_readwrite" TO "x'); DROP ROLE admin; --"`,
  ]);
  assertEquals(reason(() => planUserServer(s, server([]))).reason, "IamNotAvailable");
  // Once it exists, the function is not needed again.
  const made = server([role(name, { canLogin: true, comment: "dbtether:DatabaseUser/ns/svc" })]);
  assertEquals(sqlOf(s, made), [`GRANT "app_readwrite" TO "x'); DROP ROLE admin; --"`]);
});

Deno.test("gcpIam: never creates the role; an unmarked IAM user is not taken over", () => {
  const s = spec({ username: "sa@p.iam", authentication: "gcpIam" });
  assertEquals(reason(() => planUserServer(s, server([]))).reason, "IamUserNotFound");
  const iam = role("sa@p.iam", { canLogin: true });
  assertThrows(() => planUserServer(s, server([iam])), Error, "not created by");
});
