/**
 * `dbtether plan` against a real apiserver and a real PostgreSQL (log_statement = all): a new
 * Database and DatabaseUser are planned (exit 2, CREATE ROLE / CREATE DATABASE, the password
 * redacted) and nothing is created anywhere; once applied and Ready the same manifests plan to
 * "no changes" (exit 0); a changed field plans its ALTER; a hostile name is printed quoted and
 * runs nothing; and all of it works with a kubeconfig whose user may only get and list.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { serviceAccountKubeconfig } from "./helpers/install.ts";
import { runProgram } from "./helpers/program.ts";
import { logMark, mutatingSince, resource } from "./helpers/tenant.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function manifests(ns: string, user = "") {
  return [
    resource("Database", { name: "shop", ns, spec: "clusterRef: { name: main }\n" }),
    resource("DatabaseUser", {
      name: "app",
      ns,
      spec: `databaseRef: { name: shop }\nprivileges: readwrite\n${user}`,
    }),
  ].join("---\n");
}

async function plan(env: TestEnv, file: string, kubeconfig = env.kube.kubeconfigPath) {
  return await runProgram(["plan", "-f", file, "--kubeconfig", kubeconfig]);
}

async function pgHas(env: TestEnv, o: { role?: string; database?: string }): Promise<boolean> {
  const q = o.role !== undefined
    ? `SELECT count(*) FROM pg_roles WHERE rolname = '${o.role.replaceAll("'", "''")}'`
    : `SELECT count(*) FROM pg_database WHERE datname = '${o.database!.replaceAll("'", "''")}'`;
  return (await env.pg.superSql(q)).trim() !== "0";
}

async function objects(env: TestEnv, ns: string): Promise<string> {
  const r = await env.kube.kubectl(
    ["get", "databases,databaseusers,secrets", "-n", ns, "-o", "name"],
    { check: true },
  );
  return r.stdout.trim();
}

Deno.test({ name: "dbtether plan", ...opts }, async (t) => {
  await using env = await startEnv({ pg: { extraConf: ["log_statement = 'all'"] }, program: true });
  await env.kube.apply(env.clusterManifest("main"));
  const ns = await env.namespace("plan");
  const dir = await Deno.makeTempDir({ prefix: "dbtether-plan-" });
  const file = `${dir}/app.yaml`;
  await Deno.writeTextFile(file, manifests(ns));

  await t.step(
    "a new Database and user: exit 2, the SQL and Secrets, nothing created",
    async () => {
      const mark = await logMark(env.pg);
      const r = await plan(env, file);
      assertEquals(r.code, 2, r.stdout + r.stderr);
      assert(r.stdout.includes(`Database ${ns}/shop:`), r.stdout);
      assert(/sql: CREATE DATABASE "shop"/.test(r.stdout), r.stdout);
      assert(/sql: CREATE ROLE "app" .*PASSWORD '<redacted>'/.test(r.stdout), r.stdout);
      assert(r.stdout.includes(`secret create "app-credentials" (keys: `), r.stdout);
      assert(!r.stdout.includes("SCRAM-SHA-256") && !r.stderr.includes("SCRAM"), r.stdout);
      assertEquals(await pgHas(env, { role: "app" }), false);
      assertEquals(await pgHas(env, { database: "shop" }), false);
      assertEquals(await objects(env, ns), "");
      assertEquals(await mutatingSince(env, mark), []);
    },
  );

  await t.step("applied and Ready: the same manifests plan to no changes, exit 0", async () => {
    await env.kube.apply(await Deno.readTextFile(file));
    await env.waitPhase("databaseuser", "app", "Ready", { namespace: ns });
    const mark = await logMark(env.pg);
    const r = await plan(env, file);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertEquals(r.stdout.match(/ {2}no changes\n/g)?.length, 2, r.stdout);
    assertEquals(await mutatingSince(env, mark), []);
  });

  const changed = `${dir}/changed.yaml`;
  await Deno.writeTextFile(changed, manifests(ns, "connectionLimit: 7\n"));

  await t.step("a changed field: exit 2 with its ALTER, the server unchanged", async () => {
    const r = await plan(env, changed);
    assertEquals(r.code, 2, r.stdout + r.stderr);
    assert(/sql: ALTER ROLE "app" .*CONNECTION LIMIT 7/.test(r.stdout), r.stdout);
    assert(r.stdout.includes(`Database ${ns}/shop:\n  no changes`), r.stdout);
    const limit = await env.pg.superSql("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app'");
    assertEquals(limit.trim(), "-1");
  });

  await t.step("hostile names are printed quoted and nothing runs", async () => {
    const evil = `x"; DROP DATABASE shop; --`;
    const hostile = `${dir}/hostile.yaml`;
    await Deno.writeTextFile(
      hostile,
      [
        resource("Database", {
          name: "evil",
          ns,
          spec: `clusterRef: { name: main }\ndatabaseName: ${JSON.stringify(evil)}\n`,
        }),
        resource("DatabaseUser", {
          name: "evil",
          ns,
          spec: `databaseRef: { name: evil }\nusername: ${JSON.stringify(evil)}\n`,
        }),
      ].join("---\n"),
    );
    const mark = await logMark(env.pg);
    const r = await plan(env, hostile);
    assertEquals(r.code, 2, r.stdout + r.stderr);
    const quoted = `"x""; DROP DATABASE shop; --"`;
    assert(r.stdout.includes(`sql: CREATE DATABASE ${quoted}`), r.stdout);
    assert(r.stdout.includes(`sql: CREATE ROLE ${quoted}`), r.stdout);
    assertEquals(await mutatingSince(env, mark), []);
    assertEquals(await pgHas(env, { database: "shop" }), true);
    assertEquals(await pgHas(env, { role: evil }), false);
    assertEquals(await pgHas(env, { database: evil }), false);
  });

  await t.step("a kubeconfig that may only get and list plans the same", async () => {
    await env.kube.apply(`apiVersion: v1
kind: ServiceAccount
metadata: { name: planner, namespace: ${ns} }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: dbtether-plan-${ns} }
rules:
  - apiGroups: [dbtether.io]
    resources: ["*"]
    verbs: [get, list]
  - apiGroups: [""]
    resources: [secrets, namespaces]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: dbtether-plan-${ns} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dbtether-plan-${ns} }
subjects: [{ kind: ServiceAccount, name: planner, namespace: ${ns} }]
`);
    const as = `--as=system:serviceaccount:${ns}:planner`;
    for (const verb of ["create", "update", "patch", "delete"]) {
      for (const what of ["databaseusers.dbtether.io", "secrets"]) {
        const r = await env.kube.kubectl(["auth", "can-i", verb, what, "-n", ns, as]);
        assertEquals(r.stdout.trim(), "no", `${verb} ${what}`);
      }
    }
    const kubeconfig = await serviceAccountKubeconfig(env, { namespace: ns, name: "planner" });
    const before = await objects(env, ns);
    const mark = await logMark(env.pg);
    const same = await plan(env, file, kubeconfig);
    assertEquals(same.code, 0, same.stdout + same.stderr);
    const r = await plan(env, changed, kubeconfig);
    assertEquals(r.code, 2, r.stdout + r.stderr);
    assert(/sql: ALTER ROLE "app" .*CONNECTION LIMIT 7/.test(r.stdout), r.stdout);
    assertEquals(await objects(env, ns), before);
    assertEquals(await mutatingSince(env, mark), []);
  });

  await t.step("bad input: exit 1 with a message", async () => {
    const r = await runProgram(["plan", "-f", `${dir}/missing.yaml`]);
    assertEquals(r.code, 1, r.stdout + r.stderr);
    assert(r.stderr.includes("missing.yaml"), r.stderr);
  });
  await Deno.remove(dir, { recursive: true });
});
