/**
 * DatabaseUser against a real apiserver and a real PostgreSQL (admin not superuser), with
 * `dbtether run` as a subprocess: the README manifests, what each privilege level can do,
 * isolation, passwords never in the server log, InPlace rotation, templates and onConflict,
 * deletion policies, cross-namespace references, unmanaged roles, idempotence.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import {
  annotate,
  readyOf,
  runsAs,
  secretData,
  type UserObj,
  waitReason,
  waitRefused,
} from "./helpers/fixtures.ts";
import { psqlSession } from "./helpers/postgres.ts";
import { resource } from "./helpers/tenant.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Obj = UserObj;

function database(name: string, ns: string, extra = ""): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterRef: { name: main }
  deletionPolicy: Delete
${extra}`;
}

const README_DATABASE = `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata:
  name: my-app-db
  namespace: default
spec:
  clusterRef:
    name: my-aurora-cluster
  databaseName: my_app
  extensions:
    - uuid-ossp
    - pg_trgm
  deletionPolicy: Retain  # or Delete
`;
const README_USER = `apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata:
  name: my-app-readonly
  namespace: default
spec:
  databaseRef:
    name: my-app-db
  privileges: readonly
`;

Deno.test({ name: "DatabaseUser end to end", ...opts }, async (t) => {
  await using env = await startEnv({
    pg: { extraConf: ["log_statement = 'all'"] },
    program: true,
  });
  await env.kube.apply(env.clusterManifest("my-aurora-cluster"));
  await env.kube.apply(env.clusterManifest("main"));
  const passwords: string[] = [];

  await t.step(
    "README manifests verbatim reach Ready with the Secret; the user logs in",
    async () => {
      await env.kube.apply(README_DATABASE);
      await env.kube.apply(README_USER);
      await env.waitPhase("databaseuser", "my-app-readonly", "Ready", { namespace: "default" });
      const data =
        (await secretData(env, { namespace: "default", name: "my-app-readonly-credentials" }))!;
      assertEquals(Object.keys(data).sort(), [
        "database",
        "host",
        "password",
        "port",
        "uri",
        "username",
      ]);
      assertEquals([data.username, data.database, data.port], [
        "my-app-readonly",
        "my_app",
        String(env.pg.port),
      ]);
      assertEquals(data.password!.length, 16);
      passwords.push(data.password!);
      assert(
        await runsAs(env.pg, {
          user: data.username!,
          password: data.password!,
          database: "my_app",
        }),
      );
      const table =
        (await env.kube.kubectl(["get", "databaseusers", "-A"], { check: true })).stdout;
      assert(
        /^NAMESPACE\s+NAME\s+DATABASE\s+USERNAME\s+PRIVILEGES\s+PHASE\s+AGE$/m.test(table),
        table,
      );
      assert(
        /^default\s+my-app-readonly\s+my-app-db\s+my-app-readonly\s+readonly\s+Ready\s+/m.test(
          table,
        ),
        table,
      );
      const s = await env.getJson<
        {
          metadata: {
            labels: Record<string, string>;
            annotations: Record<string, string>;
            ownerReferences: { kind: string }[];
          };
        }
      >("secret", "my-app-readonly-credentials", "default");
      assertEquals(s?.metadata.labels["app.kubernetes.io/managed-by"], "dbtether");
      assertEquals(s?.metadata.annotations["dbtether.io/managed-by"], "my-app-readonly");
      assertEquals(s?.metadata.annotations["dbtether.io/database"], "my-app-db");
      assertEquals(s?.metadata.ownerReferences[0]?.kind, "DatabaseUser");
    },
  );

  const ns = await env.namespace("users");
  const creds = async (user: string) => {
    const name = `${user}-credentials`;
    await env.waitPhase("databaseuser", user, "Ready", { namespace: ns });
    const d = (await secretData(env, { namespace: ns, name }))!;
    passwords.push(d.password!);
    return { user: d.username!, password: d.password!, database: d.database! };
  };

  await t.step("privilege levels, tables created later, isolation between databases", async () => {
    await env.kube.apply(database("shop", ns));
    await env.kube.apply(database("other", ns));
    for (
      const [name, level, db] of [["ro", "readonly", "shop"], ["rw", "readwrite", "shop"], [
        "adm",
        "admin",
        "shop",
      ], ["oth", "readonly", "other"]]
    ) {
      await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: ${name}, namespace: ${ns} }
spec:
  database: { name: ${db}, privileges: ${level} }
`);
    }
    const ro = await creds("ro"),
      rw = await creds("rw"),
      adm = await creds("adm"),
      oth = await creds("oth");
    const q = (c: typeof ro, sql: string) => env.pg.psql(sql, c);
    assertEquals((await q(adm, "CREATE TABLE later (id int)")).code, 0, "admin creates a table");
    assertEquals(
      (await q(rw, "INSERT INTO later VALUES (1)")).code,
      0,
      "readwrite writes a later table",
    );
    assertEquals(
      (await q(ro, "SELECT count(*) FROM later")).code,
      0,
      "readonly reads a later table",
    );
    assert((await q(ro, "INSERT INTO later VALUES (2)")).code !== 0, "readonly cannot INSERT");
    assert((await q(rw, "CREATE TABLE nope (id int)")).code !== 0, "readwrite cannot CREATE TABLE");
    assert(
      !(await runsAs(env.pg, { ...oth, database: "shop" })),
      "user of other cannot connect to shop",
    );
    assert(await runsAs(env.pg, oth));
  });

  await t.step(
    "InPlace rotation by annotation: new works, old fails, an open session survives",
    async () => {
      const before = await creds("ro");
      // An open session, kept busy across the rotation.
      const session = psqlSession(env.pg, before, {
        args: ["-v", "ON_ERROR_STOP=1", "-c", "SELECT pg_sleep(4)", "-c", "SELECT 42"],
        output: "piped",
      });
      await new Promise((r) => setTimeout(r, 500));
      await env.kube.kubectl(["annotate", "databaseuser", "ro", "-n", ns, "dbtether.io/rotate=1"], {
        check: true,
      });
      const after = await waitFor("rotated Secret", async () => {
        const d = await secretData(env, { namespace: ns, name: "ro-credentials" });
        return d && d.password !== before.password ? d : undefined;
      });
      passwords.push(after.password!);
      assert(
        await runsAs(env.pg, {
          user: after.username!,
          password: after.password!,
          database: after.database!,
        }),
      );
      assert(!(await runsAs(env.pg, before)), "old password fails");
      const out = await session.output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      assert(new TextDecoder().decode(out.stdout).includes("42"));
      const u = await env.getJson<
        { status: { lastRotateRequest?: string; passwordUpdatedAt?: string } }
      >("databaseuser", "ro", ns);
      assertEquals(u?.status.lastRotateRequest, "1");
    },
  );

  await t.step("a deleted Secret comes back with a new password", async () => {
    const before = await creds("rw");
    await env.kube.kubectl(["delete", "secret", "rw-credentials", "-n", ns], { check: true });
    const after = await waitFor(
      "recreated Secret",
      async () => await secretData(env, { namespace: ns, name: "rw-credentials" }),
    );
    passwords.push(after.password!);
    assert(after.password !== before.password);
    assert(
      await runsAs(env.pg, {
        user: after.username!,
        password: after.password!,
        database: after.database!,
      }),
    );
  });

  await t.step(
    "idempotence: 10 forced reconciles send no mutating SQL and write nothing",
    async () => {
      await env.waitPhase("databaseuser", "ro", "Ready", { namespace: ns });
      await new Promise((r) => setTimeout(r, 1500));
      const rv = async () => [
        (await env.getJson<Obj>("databaseuser", "ro", ns))!.metadata.resourceVersion,
        (await env.getJson<Obj>("secret", "ro-credentials", ns))!.metadata.resourceVersion,
      ];
      const rvBefore = await rv();
      const logBefore = (await env.pg.readLog()).length;
      for (let i = 0; i < 10; i++) {
        // The Database maps to its users: each change queues a reconcile of "ro" without touching it.
        await annotate(env, { kind: "database", namespace: ns, name: "shop" }, `test/force=${i}`);
        await new Promise((r) => setTimeout(r, 300));
      }
      await new Promise((r) => setTimeout(r, 2000));
      const log = (await env.pg.readLog()).slice(logBefore);
      const mutating = log.split("\n").filter((l) =>
        /(statement|execute [^:]*): (CREATE|ALTER|GRANT|REVOKE|DROP|COMMENT|REASSIGN)\b/i.test(l)
      );
      assertEquals(mutating, []);
      assert(
        /(statement|execute [^:]*): SELECT/.test(log),
        "reconciles did run (catalog queries in the log)",
      );
      assertEquals(await rv(), rvBefore);
    },
  );

  await t.step("secret templates and onConflict", async () => {
    await env.kube.apply(database("tpl", ns));
    const cases: [string, string, string[]][] = [
      ["t-db", "template: DB", ["DB_HOST", "DB_NAME", "DB_PASSWORD", "DB_PORT", "DB_USER"]],
      ["t-pg", "template: POSTGRES", [
        "POSTGRES_DATABASE",
        "POSTGRES_HOST",
        "POSTGRES_PASSWORD",
        "POSTGRES_PORT",
        "POSTGRES_USER",
      ]],
      ["t-dsn", "template: dsn", ["dsn"]],
      ["t-custom", "template: custom\n    keys: { password: PGPASSWORD, username: PGUSER }", [
        "PGPASSWORD",
        "PGUSER",
        "database",
        "host",
        "port",
      ]],
    ];
    for (const [name, secret] of cases) {
      await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: ${name}, namespace: ${ns} }
spec:
  databaseRef: { name: tpl }
  secret:
    ${secret}
`);
    }
    for (const [name, , keys] of cases) {
      await env.waitPhase("databaseuser", name, "Ready", { namespace: ns });
      const d = (await secretData(env, { namespace: ns, name: `${name}-credentials` }))!;
      assertEquals(Object.keys(d).sort(), keys);
    }
    const dsn = (await secretData(env, { namespace: ns, name: "t-dsn-credentials" }))!.dsn!;
    const u = new URL(dsn);
    passwords.push(decodeURIComponent(u.password));
    assert(
      await runsAs(env.pg, {
        user: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
        database: "tpl",
      }),
    );
    // onConflict: a foreign Secret of the same name.
    for (const [name, mode] of [["c-fail", "Fail"], ["c-adopt", "Adopt"], ["c-merge", "Merge"]]) {
      await env.kube.apply(`apiVersion: v1
kind: Secret
metadata: { name: ${name}-credentials, namespace: ${ns} }
stringData: { foreign: "keep-me" }
`);
      await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: ${name}, namespace: ${ns} }
spec:
  databaseRef: { name: tpl }
  secret: { onConflict: ${mode} }
`);
    }
    const fail = await waitReason(env, {
      kind: "databaseuser",
      namespace: ns,
      name: "c-fail",
      reason: "SecretConflict",
    });
    assert(readyOf(fail)?.message.includes("onConflict"), String(readyOf(fail)?.message));
    await env.waitPhase("databaseuser", "c-adopt", "Ready", { namespace: ns });
    assertEquals(
      (await secretData(env, { namespace: ns, name: "c-adopt-credentials" }))!.foreign,
      undefined,
    );
    await env.waitPhase("databaseuser", "c-merge", "Ready", { namespace: ns });
    const merged = (await secretData(env, { namespace: ns, name: "c-merge-credentials" }))!;
    assertEquals(merged.foreign, "keep-me");
    passwords.push(merged.password!);
    assert(
      await runsAs(env.pg, { user: merged.username!, password: merged.password!, database: "tpl" }),
    );
  });

  await t.step("cross-namespace: refused unless the Database allows the namespace", async () => {
    const other = await env.namespace("owner");
    await env.kube.apply(database("shared", other));
    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: xns, namespace: ${ns} }
spec:
  databaseRef: { name: shared, namespace: ${other} }
`);
    await waitRefused(env, {
      kind: "databaseuser",
      namespace: ns,
      name: "xns",
      reason: "CrossNamespaceNotAllowed",
    });
    await env.kube.apply(database("shared", other, `  allowedUserNamespaces: [${ns}]\n`));
    await env.waitPhase("databaseuser", "xns", "Ready", { namespace: ns });
    const c = await creds("xns");
    assert(await runsAs(env.pg, c));
  });

  await t.step("an unmanaged role is refused, then adopted by annotation and consent", async () => {
    // Made with the master user, as on a cloud (16+ adopts only roles the admin holds WITH ADMIN
    // OPTION: docs/design/privileges.md).
    const made = await env.pg.psql(`CREATE ROLE "legacy" LOGIN PASSWORD 'x'`);
    assertEquals(made.code, 0, made.stderr);
    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: legacy, namespace: ${ns} }
spec:
  databaseRef: { name: tpl }
`);
    await waitReason(env, {
      kind: "databaseuser",
      namespace: ns,
      name: "legacy",
      reason: "RoleExistsUnmanaged",
    });
    assertEquals(
      await secretData(env, { namespace: ns, name: "legacy-credentials" }),
      undefined,
      "no Secret for a refused role",
    );
    await env.kube.kubectl([
      "annotate",
      "databaseuser",
      "legacy",
      "-n",
      ns,
      "dbtether.io/adopt=true",
    ], { check: true });
    // Adoption needs the platform team's consent on the DBCluster.
    await waitReason(env, {
      kind: "databaseuser",
      namespace: ns,
      name: "legacy",
      reason: "AdoptionNotAllowed",
    });
    await env.kube.apply(env.clusterManifest("main", {
      extraSpec: `  adoption:\n    allowedNamespaces:\n      names: [${ns}]\n`,
    }));
    const c = await creds("legacy");
    assert(await runsAs(env.pg, c));
  });

  await t.step(
    "deletion: Retain keeps the role NOLOGIN; Delete drops it even when it owns tables",
    async () => {
      await env.kube.apply(resource("DatabaseUser", {
        name: "keep",
        ns,
        spec: "databaseRef: { name: tpl }\ndeletionPolicy: Retain\n",
      }));
      const keep = await creds("keep");
      await env.kube.kubectl(["delete", "databaseuser", "keep", "-n", ns, "--timeout=60s"], {
        check: true,
      });
      assertEquals(
        (await env.pg.superSql(`SELECT rolcanlogin FROM pg_roles WHERE rolname = 'keep'`)).trim(),
        "f",
      );
      assert(!(await runsAs(env.pg, keep)));
      assertEquals(await secretData(env, { namespace: ns, name: "keep-credentials" }), undefined);
      // adm owns a table it created after RESET ROLE.
      const adm = await creds("adm");
      assertEquals(
        (await env.pg.psql(
          "RESET ROLE; CREATE TABLE mine (id int); INSERT INTO mine VALUES (7)",
          adm,
        )).code,
        0,
      );
      await env.kube.kubectl(["delete", "databaseuser", "adm", "-n", ns, "--timeout=60s"], {
        check: true,
      });
      assertEquals(
        (await env.pg.superSql(`SELECT count(*) FROM pg_roles WHERE rolname = 'adm'`)).trim(),
        "0",
      );
      assertEquals(
        (await env.pg.superSql(`SELECT count(*) FROM mine`, { database: "shop" })).trim(),
        "1",
      );
    },
  );

  await t.step("no generated password ever appears in the server log", async () => {
    const log = await env.pg.readLog();
    assert(passwords.length >= 8);
    for (const p of passwords) assert(!log.includes(p), "a password reached the server log");
    assert(/SCRAM-SHA-256\$4096:/.test(log) || /PASSWORD/.test(log), "role statements were logged");
  });
});
