/**
 * DatabaseUser memberOf, databases[].settings and validUntil against a real apiserver and
 * PostgreSQL (admin not superuser), as a user checks them: the role reads a table nobody granted
 * it through pg_read_all_data (14+) and is a member of pg_monitor; its session in the database
 * SHOWs the per-database setting; hand changes are put back and named in a DriftCorrected Event;
 * a rotation moves VALID UNTIL; a past VALID UNTIL stops the Secret's password from logging in;
 * and a hostile tenant asking for roles the DBCluster does not grant gets a reason, with nothing
 * changed.
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { type Obj, readyOf, readyReason, secretData } from "./helpers/fixtures.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type UserObj = Obj & { status?: { passwordUpdatedAt?: string; observedGeneration?: number } };

function user(ns: string, name: string, db: string, extra: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: ${name}, namespace: ${ns} }
spec:
  databases:
    - name: ${db}
      privileges: readwrite
      settings: { statement_timeout: "2500ms" }
${extra}`;
}

function database(ns: string, name: string, pgName: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: ${name}, namespace: ${ns} }
spec: { clusterRef: { name: main }, databaseName: ${pgName}, deletionPolicy: Delete }
`;
}

/** The role's memberships outside its databases' groups, sorted, as the catalog says. */
async function memberOf(env: TestEnv, role: string): Promise<string[]> {
  const out = await env.pg.superSql(
    `SELECT r.rolname FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid ` +
      `JOIN pg_roles m ON m.oid = am.member WHERE m.rolname = '${role}' ORDER BY 1`,
  );
  return out.split("\n").map((l) => l.trim()).filter(Boolean);
}

/** rolvaliduntil in whole seconds since the epoch ("" for none, "Infinity"). */
async function validUntil(env: TestEnv, role: string): Promise<string> {
  return (await env.pg.superSql(
    `SELECT extract(epoch FROM rolvaliduntil)::float8 FROM pg_roles WHERE rolname = '${role}'`,
  )).trim();
}

async function events(env: TestEnv, ns: string, name: string): Promise<string> {
  return (await env.kube.kubectl([
    "get",
    "events",
    "-n",
    ns,
    "--field-selector",
    `involvedObject.name=${name}`,
    "-o",
    "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message",
  ], { check: true })).stdout;
}

Deno.test(
  { name: "DatabaseUser memberOf, per-database settings, validUntil", ...opts },
  async (t) => {
    await using env = await startEnv({
      pg: true,
      program: true,
      programArgs: ["--resync-period", "3s"],
    });
    const major = env.pg.major;
    const admin = env.pg.admin.user;
    // What a cloud's master role holds: the predefined roles, WITH ADMIN OPTION, and no superuser.
    await env.pg.superSql(`GRANT pg_monitor TO "${admin}" WITH ADMIN OPTION`);
    if (major >= 14) {
      await env.pg.superSql(
        `GRANT pg_read_all_data TO "${admin}" WITH ADMIN OPTION`,
      );
    }
    await env.kube.apply(env.clusterManifest("main", {
      extraSpec: "  grantableRoles: [pg_monitor, pg_read_all_data, pg_signal_backend]\n",
    }));
    const ns = await env.namespace("members");
    const hostile = await env.namespace("hostile");
    await env.kube.apply(database(ns, "app", "rm_app") + "---\n" + database(hostile, "h", "rm_h"));
    const wanted = major >= 14 ? "[pg_monitor, pg_read_all_data]" : "[pg_monitor]";
    await env.kube.apply(user(
      ns,
      "svc",
      "app",
      `  memberOf: ${wanted}\n  validUntil: { afterPasswordChange: 2h }\n`,
    ));
    await env.kube.apply(user(hostile, "evil", "h", ""));
    await env.waitPhase("databaseuser", "svc", "Ready", {
      namespace: ns,
      timeoutMs: budget("ready"),
    });
    await env.waitPhase("databaseuser", "evil", "Ready", {
      namespace: hostile,
      timeoutMs: budget("ready"),
    });
    // A table of the superuser's: no group of the Database has any privilege on it.
    await env.pg.superSql("CREATE TABLE private_t (x int); INSERT INTO private_t VALUES (7)", {
      database: "rm_app",
    });
    const creds = async () => (await secretData(env, { namespace: ns, name: "svc-credentials" }))!;
    const c = await creds();
    const login = { user: c.username!, password: c.password!, database: "rm_app" };
    const as = (sql: string, who = login) => env.pg.psql(sql, who);
    const one = async (sql: string) => (await as(sql)).stdout.trim();

    await t.step(
      "memberships, the per-database setting and VALID UNTIL, as the user sees them",
      async () => {
        assertEquals(await one("SELECT pg_has_role('pg_monitor', 'MEMBER')"), "t");
        assertEquals(await one("SHOW statement_timeout"), "2500ms");
        if (major >= 14) assertEquals(await one("SELECT x FROM private_t"), "7");
        const u = await env.getJson<UserObj>("databaseuser", "svc", ns);
        const want = Date.parse(u!.status!.passwordUpdatedAt!) / 1000 + 7200;
        assertEquals(Number(await validUntil(env, login.user)), want);
      },
    );

    await t.step("hand changes are put back and named in a DriftCorrected Event", async () => {
      // As the admin: on 16+ only the grantor's REVOKE takes dbtether's grant away.
      const r = await env.pg.psql(
        `REVOKE pg_monitor FROM "${login.user}"; ` +
          `ALTER ROLE "${login.user}" IN DATABASE rm_app SET statement_timeout = '0'; ` +
          `ALTER ROLE "${login.user}" VALID UNTIL 'infinity'`,
      );
      assertEquals(r.code, 0, r.stderr);
      await waitFor(
        "put back",
        async () =>
          (await memberOf(env, login.user)).includes("pg_monitor") &&
          (await one("SHOW statement_timeout")) === "2500ms" &&
          (await validUntil(env, login.user)) !== "Infinity",
        { timeoutMs: budget("react") },
      );
      const ev = await waitFor("the Event", async () => {
        const text = await events(env, ns, "svc");
        return text.includes("DriftCorrected") ? text : undefined;
      }, { timeoutMs: budget("react") });
      assertMatch(ev, /Warning\s+DriftCorrected\s+Put back .*GRANT "pg_monitor"/);
      assertMatch(ev, /statement_timeout = '2500ms'/);
      assert(!ev.includes(c.password!), "no password in Events");
    });

    await t.step("a rotation moves VALID UNTIL; one removed from memberOf is revoked", async () => {
      const before = await validUntil(env, login.user);
      const old =
        (await env.getJson<UserObj>("databaseuser", "svc", ns))!.status!.passwordUpdatedAt;
      // updatedAt has 1 s resolution: make sure the rotation lands on a later second.
      await new Promise((r) => setTimeout(r, 1100));
      await env.kube.kubectl(["annotate", "-n", ns, "databaseuser/svc", "dbtether.io/rotate=1"], {
        check: true,
      });
      const u = await waitFor("rotated", async () => {
        const x = await env.getJson<UserObj>("databaseuser", "svc", ns);
        return x?.status?.passwordUpdatedAt !== old && readyReason(x) === "Ready" ? x : undefined;
      }, { timeoutMs: budget("react") });
      const want = Date.parse(u.status!.passwordUpdatedAt!) / 1000 + 7200;
      assertEquals(Number(await validUntil(env, login.user)), want);
      assert(Number(before) < want, `${before} < ${want}`);
      await env.kube.apply(
        user(ns, "svc", "app", "  memberOf: []\n  validUntil: { afterPasswordChange: 2h }\n"),
      );
      await waitFor("revoked", async () => {
        const m = await memberOf(env, login.user);
        return !m.includes("pg_monitor") && !m.includes("pg_read_all_data");
      }, { timeoutMs: budget("react") });
      const fresh = { ...login, password: (await creds()).password! };
      const r = await as("SELECT pg_has_role('pg_monitor', 'MEMBER')", fresh);
      assertEquals(r.stdout.trim(), "f");
    });

    await t.step("a VALID UNTIL in the past: the Secret's password no longer logs in", async () => {
      const fresh = { ...login, password: (await creds()).password! };
      assertEquals((await as("SELECT 1", fresh)).code, 0);
      await env.kube.apply(
        user(ns, "svc", "app", '  validUntil: { at: "2020-01-01T00:00:00Z" }\n'),
      );
      await waitFor("expired", async () => (await validUntil(env, login.user)) === "1577836800", {
        timeoutMs: budget("react"),
      });
      const r = await as("SELECT 1", fresh);
      assert(r.code !== 0, "login refused");
      assertMatch(r.stderr, /password authentication failed/);
      await env.kube.apply(user(ns, "svc", "app", "  validUntil: { at: infinity }\n"));
      await waitFor("logs in again", async () => (await as("SELECT 1", fresh)).code === 0, {
        timeoutMs: budget("react"),
      });
    });

    await t.step("refused at admission: both validUntil forms, a malformed time", async () => {
      for (
        const v of [
          "{ at: infinity, afterPasswordChange: 1h }",
          `{ at: "tomorrow'; DROP ROLE ${admin}; --" }`,
        ]
      ) {
        const r = await env.kube.kubectl(["apply", "-f", "-"], {
          stdin: user(hostile, "evil", "h", `  validUntil: ${v}\n`),
        });
        assert(r.code !== 0, `${v} refused`);
      }
    });

    await t.step("a hostile tenant's memberOf: a reason each, nothing changed", async () => {
      const evilBefore = await memberOf(env, "evil");
      const svcBefore = await memberOf(env, login.user);
      const cases: [string, RegExp][] = [
        ["pg_write_server_files", /does not list it in spec\.grantableRoles/],
        [admin, /does not list it in spec\.grantableRoles/],
        ["rm_app_readonly", /does not list it in spec\.grantableRoles/],
        ["rds_superuser", /does not list it in spec\.grantableRoles/],
        ["pg_signal_backend", /does not hold it WITH ADMIN OPTION/],
        ...(major < 14
          ? [["pg_read_all_data", /does not exist on this server \(PostgreSQL 13\)/]] as [
            string,
            RegExp,
          ][]
          : []),
      ];
      for (const [role, why] of cases) {
        await env.kube.apply(user(hostile, "evil", "h", `  memberOf: [${JSON.stringify(role)}]\n`));
        const o = await waitFor(`refusal of ${role}`, async () => {
          const u = await env.getJson<UserObj>("databaseuser", "evil", hostile);
          const ready = readyOf(u);
          return ready?.reason === "RoleNotGrantable" &&
              u?.status?.observedGeneration === u?.metadata.generation &&
              ready.message.includes(JSON.stringify(role))
            ? ready
            : undefined;
        }, { timeoutMs: budget("react") });
        assertMatch(o.message, why);
      }
      await env.kube.apply(
        user(
          hostile,
          "evil",
          "h",
          "  rotation: { days: 1 }\n  validUntil: { afterPasswordChange: 1h }\n",
        ),
      );
      await waitFor(
        "ValidUntilBeforeRotation",
        async () =>
          readyReason(await env.getJson<UserObj>("databaseuser", "evil", hostile)) ===
            "ValidUntilBeforeRotation",
        { timeoutMs: budget("react") },
      );
      assertEquals(await memberOf(env, "evil"), evilBefore);
      assertEquals(await memberOf(env, login.user), svcBefore);
      assertEquals(await validUntil(env, "evil"), "");
    });
  },
);
