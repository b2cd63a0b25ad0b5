/**
 * DatabaseUser `spec.settings` against a real apiserver and PostgreSQL (admin not superuser): the
 * user's own sessions see each setting, a setting changed by hand is put back, one removed from
 * the spec is reset, the never-allowed names are refused at admission (on a DBCluster too),
 * another name waits for the DBCluster's allowedRoleSettings (SettingNotAllowed) and then
 * applies, and a value the server refuses gives a reason with the server's message, as a
 * literal, never as SQL.
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { type Obj, readyOf, readyReason, secretData } from "./helpers/fixtures.ts";
import { freePort } from "./helpers/free_port.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function user(ns: string, settings: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: svc, namespace: ${ns} }
spec:
  databaseRef: { name: app }
  privileges: readwrite
${settings}`;
}

Deno.test({ name: "DatabaseUser settings: applied, kept, reset, refused", ...opts }, async (t) => {
  const port = freePort();
  await using env = await startEnv({
    pg: { extraConf: ["log_statement = 'all'"] },
    program: true,
    programArgs: ["--resync-period", "3s", "--metrics-bind-address", `127.0.0.1:${port}`],
  });
  await env.kube.apply(env.clusterManifest("main"));
  const ns = await env.namespace("settings");
  await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: app, namespace: ${ns} }
spec: { clusterRef: { name: main }, databaseName: rs_app, deletionPolicy: Delete }
`);
  await env.kube.apply(user(
    ns,
    '  settings:\n    statement_timeout: "1500ms"\n    work_mem: "8MB"\n    timezone: "Europe/Berlin"\n',
  ));
  await env.waitPhase("databaseuser", "svc", "Ready", {
    namespace: ns,
    timeoutMs: budget("ready"),
  });
  const c = (await secretData(env, { namespace: ns, name: "svc-credentials" }))!;
  const login = { user: c.username!, password: c.password!, database: "rs_app" };
  const show = async (name: string) => (await env.pg.psql(`SHOW ${name}`, login)).stdout.trim();

  await t.step("the user's sessions see every setting", async () => {
    assertEquals(await show("statement_timeout"), "1500ms");
    assertEquals(await show("work_mem"), "8MB");
    assertEquals(await show("timezone"), "Europe/Berlin");
  });

  await t.step("a converged user gets no ALTER ROLE from later reconciles", async () => {
    const mark = (await env.pg.readLog()).length;
    const reconciles = async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return text.split("\n").filter((l) =>
        l.startsWith('dbtether_reconcile_total{controller="databaseuser"')
      ).reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
    };
    const before = await reconciles();
    // The resync (every 3 s here) reconciles the user again meanwhile.
    await waitFor("two more reconciles", async () => (await reconciles()) >= before + 2, {
      timeoutMs: budget("react"),
    });
    const after = (await env.pg.readLog()).slice(mark).split("\n")
      .filter((l) => l.includes("[dbtether@"));
    assertEquals(after.filter((l) => /ALTER ROLE/.test(l)), []);
  });

  await t.step("a setting changed by hand is put back", async () => {
    await env.pg.superSql(`ALTER ROLE "${login.user}" SET statement_timeout = '0'`);
    await env.pg.superSql(`ALTER ROLE "${login.user}" SET lock_timeout = '9s'`);
    await waitFor(
      "statement_timeout back, lock_timeout reset",
      async () =>
        (await show("statement_timeout")) === "1500ms" && (await show("lock_timeout")) === "0",
      {
        timeoutMs: budget("react"),
      },
    );
  });

  await t.step("a setting removed from the spec is reset", async () => {
    await env.kube.apply(user(ns, '  settings:\n    statement_timeout: "1500ms"\n'));
    // The server's own values: what a role without settings (the admin) sees.
    const base = async (name: string) => (await env.pg.psql(`SHOW ${name}`)).stdout.trim();
    const [workMem, tz] = [await base("work_mem"), await base("timezone")];
    await waitFor(
      "work_mem and timezone back to the server's",
      async () => (await show("work_mem")) === workMem && (await show("timezone")) === tz,
      {
        timeoutMs: budget("react"),
      },
    ).catch(async (e) => {
      const cfg = await env.pg.superSql(
        `SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole ` +
          `WHERE r.rolname = '${login.user}'`,
      );
      throw new Error(`${(e as Error).message}: base ${workMem} ${tz}; role ${cfg}`);
    });
    assertEquals(await show("statement_timeout"), "1500ms");
  });

  await t.step("the never-allowed names are refused at admission", async () => {
    for (const name of ["role", "session_authorization", "log_statement", "search_path"]) {
      const r = await env.kube.kubectl(["apply", "-f", "-"], {
        stdin: user(ns, `  settings:\n    ${name}: "x"\n`),
      });
      assert(r.code !== 0, `${name} refused`);
      assertMatch(r.stderr, /never allowed/);
    }
    // A DBCluster cannot allow them either.
    const r = await env.kube.kubectl([
      "patch",
      "dbcluster",
      "main",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { allowedRoleSettings: ["log_statement"] } }),
    ]);
    assert(r.code !== 0, "a DBCluster listing log_statement is refused");
    assertMatch(r.stderr, /must not list/);
  });

  await t.step(
    "another setting waits for the DBCluster's allowedRoleSettings, then applies",
    async () => {
      await env.kube.apply(user(
        ns,
        '  settings:\n    statement_timeout: "1500ms"\n    extra_float_digits: "2"\n',
      ));
      const o = await waitFor("the refusal", async () => {
        const u = await env.getJson<Obj>("databaseuser", "svc", ns);
        return readyReason(u) === "SettingNotAllowed" &&
            u?.status?.observedGeneration === u?.metadata.generation
          ? u
          : undefined;
      }, { timeoutMs: budget("react") });
      assertMatch(readyOf(o)!.message, /DBCluster "main" does not list it/);
      assertEquals(await show("extra_float_digits"), "1", "nothing was set");
      const patched = await env.kube.kubectl([
        "patch",
        "dbcluster",
        "main",
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { allowedRoleSettings: ["extra_float_digits"] } }),
      ], { check: true });
      assertEquals(patched.code, 0);
      await env.waitPhase("databaseuser", "svc", "Ready", {
        namespace: ns,
        timeoutMs: budget("react"),
      });
      assertEquals(await show("extra_float_digits"), "2");
      // Removed from the spec, it is reset like a built-in one.
      await env.kube.apply(user(ns, '  settings:\n    statement_timeout: "1500ms"\n'));
      await waitFor(
        "extra_float_digits reset",
        async () => (await show("extra_float_digits")) === "1",
        {
          timeoutMs: budget("react"),
        },
      );
    },
  );

  await t.step(
    "a value the server refuses: a reason with its message; it stays a literal",
    async () => {
      const bad = "1s'; DROP ROLE dbtether_admin; --";
      await env.kube.apply(
        user(ns, `  settings:\n    statement_timeout: ${JSON.stringify(bad)}\n`),
      );
      const o = await waitFor("the refusal", async () => {
        const u = await env.getJson<Obj>("databaseuser", "svc", ns);
        return readyReason(u) === "SqlFailed" &&
            u?.status?.observedGeneration === u?.metadata.generation
          ? u
          : undefined;
      }, { timeoutMs: budget("react") });
      assertMatch(readyOf(o)!.message, /statement_timeout/);
      assertEquals(
        (await env.pg.superSql("SELECT count(*) FROM pg_roles WHERE rolname = 'dbtether_admin'"))
          .trim(),
        "1",
      );
      const log = await env.pg.readLog();
      assert(!/syntax error/.test(log), "no statement the server could not parse");
      assertEquals(await show("statement_timeout"), "1500ms", "the last good value stays");
    },
  );
});
