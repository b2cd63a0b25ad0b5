/**
 * DatabaseUser spec.authentication (awsIam, azureEntra, gcpIam) against a real apiserver and a
 * real PostgreSQL whose admin is not superuser. What the clouds provide is emulated on that
 * server, made by its superuser as the cloud would have it (docs/cloud/iam-users.md):
 * - RDS: a NOLOGIN role `rds_iam`, held by the admin WITH ADMIN OPTION (as the master user
 *   holds it). Whether RDS then accepts a token is RDS's; here the test checks the membership
 *   and that the role has no password (pg_authid, superuser only).
 * - Azure: a function `pgaadauth_create_principal(text, boolean, boolean)` that records its
 *   calls in a table and creates the LOGIN role, giving the caller ADMIN OPTION on it.
 * - Cloud SQL: the IAM user is a LOGIN role created by the superuser (the admin API's part), a
 *   member of `cloudsqliamserviceaccount` as Cloud SQL makes it. It has no password (no token
 *   can be checked here), so what it may do is tried as the role by the superuser's SET ROLE.
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { mergePatch, readyOf, secretData, waitReason } from "./helpers/fixtures.ts";
import { adoptionGrant, resource } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const REGION = "eu-west-1";

Deno.test({ name: "DatabaseUser IAM users: awsIam, azureEntra, gcpIam", ...opts }, async (t) => {
  await using env = await startEnv({
    pg: true,
    program: true,
    programArgs: ["--resync-period", "3s"],
  });
  const pg = env.pg;
  const admin = pg.admin.user;
  const ns = await env.namespace("iam");
  // What a cloud's admin role holds: a predefined role WITH ADMIN OPTION, for memberOf.
  await pg.superSql(`GRANT pg_monitor TO "${admin}" WITH ADMIN OPTION`);
  await env.kube.apply(env.clusterManifest("main", {
    extraSpec: adoptionGrant([ns]) + "  grantableRoles: [pg_monitor]\n",
  }));
  await env.kube.apply(resource("Database", {
    name: "app",
    ns,
    spec: "clusterRef: { name: main }\ndatabaseName: iam_app\ndeletionPolicy: Delete\n",
  }));
  const user = (name: string, auth: string, more = "") =>
    resource("DatabaseUser", {
      name,
      ns,
      spec: `databaseRef: { name: app }\nprivileges: readwrite\n${auth}${more}`,
    });
  const aws = `authentication: { type: awsIam, region: ${REGION} }\n`;
  const q = async (sql: string) => (await pg.superSql(sql)).trim();
  const hasPassword = (role: string) =>
    q(`SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = '${role}'`);
  const member = (role: string, of: string) =>
    q(`SELECT pg_has_role('${role}', '${of}', 'MEMBER')`);
  const roleExists = async (role: string) =>
    (await q(`SELECT count(*) FROM pg_roles WHERE rolname = '${role}'`)) === "1";
  const ready = (name: string) =>
    waitReason(env, { kind: "databaseuser", namespace: ns, name, reason: "Ready" });

  await t.step("awsIam on a server without rds_iam: IamNotAvailable, no role", async () => {
    await env.kube.apply(user("awssvc", aws));
    const u = await waitReason(env, {
      kind: "databaseuser",
      namespace: ns,
      name: "awssvc",
      reason: "IamNotAvailable",
    });
    assertMatch(readyOf(u)!.message, /no role rds_iam/);
    assertEquals(await roleExists("awssvc"), false);
  });

  await t.step("rds_iam the admin cannot grant: IamNotAvailable names ADMIN OPTION", async () => {
    await q(`CREATE ROLE rds_iam NOLOGIN; GRANT rds_iam TO ${admin}`);
    await waitFor("the ADMIN OPTION reason", async () => {
      const u = await env.getJson<{ status?: unknown }>("databaseuser", "awssvc", ns);
      const c = readyOf(u as never) as { message?: string } | undefined;
      return c?.message?.includes("WITH ADMIN OPTION") ? true : undefined;
    }, { timeoutMs: budget("ready") });
    assertEquals(await roleExists("awssvc"), false);
  });

  await t.step("awsIam: role without password, in rds_iam; Secret without password", async () => {
    await q(`GRANT rds_iam TO ${admin} WITH ADMIN OPTION`);
    await ready("awssvc");
    assertEquals(await member("awssvc", "rds_iam"), "t");
    assertEquals(await hasPassword("awssvc"), "f");
    assertEquals(await member("awssvc", "iam_app_readwrite"), "t");
    const s = (await secretData(env, { namespace: ns, name: "awssvc-credentials" }))!;
    assertEquals(s.username, "awssvc");
    assertEquals(s.region, REGION);
    assertEquals(s.database, "iam_app");
    assertEquals(s.host, pg.host);
    assertEquals(s.port, String(pg.port));
    assertEquals(s.password, undefined);
    assertEquals(s.uri, `postgresql://awssvc@${pg.host}:${pg.port}/iam_app`);
  });

  await t.step("a password user switched to awsIam loses its password, and back", async () => {
    await env.kube.apply(user("pwsvc", ""));
    await ready("pwsvc");
    const before = (await secretData(env, { namespace: ns, name: "pwsvc-credentials" }))!;
    const login = { user: "pwsvc", password: before.password!, database: "iam_app" };
    assertEquals((await pg.psql("SELECT 1", login)).stdout.trim(), "1");
    assertEquals(await hasPassword("pwsvc"), "t");

    await mergePatch(env, { kind: "databaseuser", namespace: ns, name: "pwsvc" }, {
      spec: { authentication: { type: "awsIam", region: REGION } },
    });
    await waitFor("the Secret without password", async () => {
      const s = await secretData(env, { namespace: ns, name: "pwsvc-credentials" });
      return s && s.password === undefined && s.region === REGION ? true : undefined;
    }, { timeoutMs: budget("ready") });
    await ready("pwsvc");
    assertEquals(await hasPassword("pwsvc"), "f");
    assertEquals(await member("pwsvc", "rds_iam"), "t");
    const record = await secretData(env, { namespace: ns, name: "dbtether-pwsvc-state" });
    assertEquals(record?.password, undefined);
    const denied = await pg.psql("SELECT 1", login);
    assert(denied.code !== 0, "the old password must no longer log in");
    assertMatch(denied.stderr, /password authentication failed/);

    await mergePatch(env, { kind: "databaseuser", namespace: ns, name: "pwsvc" }, {
      spec: { authentication: { type: "password", region: null } },
    });
    const after = await waitFor("a new password in the Secret", async () => {
      const s = await secretData(env, { namespace: ns, name: "pwsvc-credentials" });
      return s?.password ? s : undefined;
    }, { timeoutMs: budget("ready") });
    await ready("pwsvc");
    assertEquals(after.region, undefined);
    assertEquals(await member("pwsvc", "rds_iam"), "f");
    const back = { user: "pwsvc", password: after.password!, database: "iam_app" };
    assertEquals((await pg.psql("SELECT 1", back)).stdout.trim(), "1");
  });

  let other = "";
  await t.step("another namespace cannot point awsIam at a role it does not own", async () => {
    other = await env.namespace("iam-other");
    await env.kube.apply(resource("Database", {
      name: "app",
      ns: other,
      spec: "clusterRef: { name: main }\ndatabaseName: iam_other\ndeletionPolicy: Delete\n",
    }));
    await env.kube.apply(resource("DatabaseUser", {
      name: "thief",
      ns: other,
      spec: `databaseRef: { name: app }\nusername: pwsvc\n${aws}`,
    }));
    await waitReason(env, {
      kind: "databaseuser",
      namespace: other,
      name: "thief",
      reason: "RoleClaimedByOther",
    });
    assertEquals(await member("pwsvc", "rds_iam"), "f");
    assertEquals(await member("pwsvc", "iam_other_readonly"), "f");
  });

  await t.step("azureEntra: no pgaadauth_create_principal gives IamNotAvailable", async () => {
    await env.kube.apply(user("entrasvc", "authentication: { type: azureEntra }\n"));
    const u = await waitReason(env, {
      kind: "databaseuser",
      namespace: ns,
      name: "entrasvc",
      reason: "IamNotAvailable",
    });
    assertMatch(readyOf(u)!.message, /pgaadauth_create_principal/);
    assertEquals(await roleExists("entrasvc"), false);
  });

  await t.step("azureEntra: the principal is created by the function, once", async () => {
    await q(`CREATE TABLE public.entra_calls (name text, is_admin bool, is_mfa bool);
CREATE FUNCTION public.pgaadauth_create_principal(name text, is_admin boolean, is_mfa boolean)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
BEGIN
  INSERT INTO public.entra_calls VALUES (name, is_admin, is_mfa);
  EXECUTE format('CREATE ROLE %I LOGIN', name);
  EXECUTE format('GRANT %I TO %I WITH ADMIN OPTION', name, session_user);
  RETURN 'Created role for ' || name;
END $f$;
GRANT EXECUTE ON FUNCTION public.pgaadauth_create_principal(text, boolean, boolean) TO ${admin}`);
    await ready("entrasvc");
    assertEquals(
      await q(
        "SELECT string_agg(format('%s,%s,%s', name, is_admin, is_mfa), ';') FROM public.entra_calls",
      ),
      "entrasvc,f,f",
    );
    assertEquals(await hasPassword("entrasvc"), "f");
    assertEquals(await member("entrasvc", "iam_app_readwrite"), "t");
    const s = (await secretData(env, { namespace: ns, name: "entrasvc-credentials" }))!;
    assertEquals(s.username, "entrasvc");
    assertEquals(s.password, undefined);
    assertEquals(s.region, undefined);
  });

  const gcpRole = "svc@proj.iam";
  const gcp = (ann: Record<string, string>, more = "") =>
    resource("DatabaseUser", {
      name: "gcpsvc",
      ns,
      annotations: ann,
      spec: `databaseRef: { name: app }\nprivileges: readwrite\nusername: "${gcpRole}"\n` +
        `authentication: { type: gcpIam }\n${more}`,
    });

  await t.step("gcpIam waits for the IAM user; never creates it", async () => {
    await env.kube.apply(gcp({}));
    const u = await waitReason(env, {
      kind: "databaseuser",
      namespace: ns,
      name: "gcpsvc",
      reason: "IamUserNotFound",
    });
    assertMatch(readyOf(u)!.message, /admin API/);
    assertEquals(await roleExists(gcpRole), false);
  });

  await t.step("gcpIam: the IAM user gets grants once adoption is consented", async () => {
    await q(`CREATE ROLE "${gcpRole}" LOGIN; GRANT "${gcpRole}" TO ${admin} WITH ADMIN OPTION`);
    await waitReason(env, {
      kind: "databaseuser",
      namespace: ns,
      name: "gcpsvc",
      reason: "RoleExistsUnmanaged",
    });
    assertEquals(await member(gcpRole, "iam_app_readwrite"), "f");
    await env.kube.apply(gcp({ "dbtether.io/adopt": "true" }));
    await ready("gcpsvc");
    assertEquals(await member(gcpRole, "iam_app_readwrite"), "t");
    const s = (await secretData(env, { namespace: ns, name: "gcpsvc-credentials" }))!;
    assertEquals(s.username, gcpRole);
    assertEquals(s.password, undefined);
  });

  /** `sql` in iam_app as the IAM user (SET ROLE by the superuser): its output, or the error. */
  const asIamUser = (sql: string) =>
    pg.superSql(`SET ROLE "${gcpRole}"; ${sql}`, { database: "iam_app" })
      .then((out) => out.trim(), (e: Error) => e.message);
  const canConnect = () => q(`SELECT has_database_privilege('${gcpRole}', 'iam_app', 'CONNECT')`);
  const canLogin = () => q(`SELECT rolcanlogin FROM pg_roles WHERE rolname = '${gcpRole}'`);
  const comment = (role: string) =>
    q(`SELECT coalesce(shobj_description(oid, 'pg_authid'), '-') FROM pg_roles
       WHERE rolname = '${role}'`);
  const gone = (namespace: string, names: string[]) =>
    waitFor("the users gone", async () => {
      for (const n of names) if (await env.getJson("databaseuser", n, namespace)) return undefined;
      return true;
    }, { timeoutMs: budget("ready") });
  const roleSettings = (role: string) =>
    q(`SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
       WHERE r.rolname = '${role}'`);

  await t.step("gcpIam: memberOf, a setting and a table; Cloud SQL's own grant", async () => {
    await q(`CREATE ROLE cloudsqliamserviceaccount NOLOGIN;
GRANT cloudsqliamserviceaccount TO "${gcpRole}"`);
    await pg.superSql(
      "SET ROLE iam_app_owner; CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)",
      { database: "iam_app" },
    );
    const more = "memberOf: [pg_monitor]\nsettings: { statement_timeout: 2500ms }\n";
    await env.kube.apply(gcp({ "dbtether.io/adopt": "true" }, more));
    await waitFor(
      "pg_monitor and the setting",
      async () =>
        await member(gcpRole, "pg_monitor") === "t" && await roleSettings(gcpRole) === "1"
          ? true
          : undefined,
      { timeoutMs: budget("ready") },
    );
    assertEquals(
      await asIamUser("INSERT INTO orders VALUES (2); SELECT count(*) FROM orders"),
      "2",
    );
    assertEquals(await canConnect(), "t");
    assertMatch(await comment(gcpRole), /^dbtether:DatabaseUser\//);
  });

  await t.step(
    "another namespace's gcpIam user on that role: refused, deleted, no change",
    async () => {
      await env.kube.apply(resource("DatabaseUser", {
        name: "gcpthief",
        ns: other,
        annotations: { "dbtether.io/adopt": "true" },
        spec:
          `databaseRef: { name: app }\nusername: "${gcpRole}"\nauthentication: { type: gcpIam }\n`,
      }));
      await waitReason(env, {
        kind: "databaseuser",
        namespace: other,
        name: "gcpthief",
        reason: "RoleClaimedByOther",
      });
      const before = await comment(gcpRole);
      await env.kube.kubectl(["delete", "databaseuser", "-n", other, "gcpthief"]);
      await gone(other, ["gcpthief"]);
      assertEquals(await comment(gcpRole), before);
      assertEquals(await member(gcpRole, "iam_app_readwrite"), "t");
      assertEquals(await member(gcpRole, "pg_monitor"), "t");
      assertEquals(await roleSettings(gcpRole), "1");
    },
  );

  await t.step("deleting a gcpIam user revokes dbtether's grants, keeps the role", async () => {
    await env.kube.kubectl(["delete", "databaseuser", "-n", ns, "gcpsvc"]);
    // Gone: the finalizer let it go, after the release.
    await gone(ns, ["gcpsvc"]);
    assertEquals(await roleExists(gcpRole), true);
    // Still LOGIN; no CONNECT on the app's database (that came with dbtether's groups), and
    // its table is out of reach.
    assertEquals(await canLogin(), "t");
    assertEquals(await canConnect(), "f");
    for (const sql of ["SELECT count(*) FROM orders", "INSERT INTO orders VALUES (3)"]) {
      assertMatch(await asIamUser(sql), /permission denied for table orders/, sql);
    }
    assertEquals(await member(gcpRole, "iam_app_readwrite"), "f");
    assertEquals(await member(gcpRole, "iam_app_readonly"), "f");
    assertEquals(await member(gcpRole, "pg_monitor"), "f");
    assertEquals(await member(gcpRole, "cloudsqliamserviceaccount"), "t");
    assertEquals(await comment(gcpRole), "-");
    assertEquals(await roleSettings(gcpRole), "0");
    assertEquals(await secretData(env, { namespace: ns, name: "gcpsvc-credentials" }), undefined);
  });

  await t.step("gcpIam with deletionPolicy Retain: deletion keeps the role's grants", async () => {
    await env.kube.apply(resource("DatabaseUser", {
      name: "gcpkeep",
      ns,
      annotations: { "dbtether.io/adopt": "true" },
      spec: `databaseRef: { name: app }\nusername: "${gcpRole}"\n` +
        "authentication: { type: gcpIam }\ndeletionPolicy: Retain\n",
    }));
    await ready("gcpkeep");
    assertEquals(await member(gcpRole, "iam_app_readonly"), "t");
    await env.kube.kubectl(["delete", "databaseuser", "-n", ns, "gcpkeep"]);
    await gone(ns, ["gcpkeep"]);
    assertEquals(await member(gcpRole, "iam_app_readonly"), "t");
    assertEquals(await asIamUser("SELECT count(*) FROM orders"), "2");
    // Unlike a password user's Retain, it keeps LOGIN.
    assertEquals(await canLogin(), "t");
  });

  await t.step("deletion drops the awsIam and azureEntra roles", async () => {
    await env.kube.kubectl(["delete", "databaseuser", "-n", ns, "awssvc", "entrasvc"]);
    await gone(ns, ["awssvc", "entrasvc"]);
    assertEquals(await roleExists("awssvc"), false);
    assertEquals(await roleExists("entrasvc"), false);
  });
});
