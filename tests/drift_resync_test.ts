/**
 * The periodic resync (`--resync-period`) against a real apiserver and a real PostgreSQL: what is
 * changed by hand on the server is put back with no change to any Kubernetes object, and a
 * resync that finds nothing to do writes nothing (no status, no Secret).
 */
import { apiserverRequests } from "./helpers/apiserver_metrics.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { type Obj, runsAs, secretData } from "./helpers/fixtures.ts";
import { freePort } from "./helpers/free_port.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The sum of `dbtether_resync_queued_total` for `controller` on /metrics. */
async function resyncs(port: number, controller: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith(`dbtether_resync_queued_total{controller="${controller}"}`)
  );
  return line ? Number(line.split(" ").at(-1)) : 0;
}

/** The test env with `dbtether run` given `flags` and its metrics on a free port. */
async function startWith(flags: string[]) {
  const port = freePort();
  const env = await startEnv({
    pg: true,
    program: true,
    programArgs: ["--metrics-bind-address", `127.0.0.1:${port}`, ...flags],
  });
  await env.kube.apply(env.clusterManifest("main"));
  return { env, port };
}

/** A Database `app` (PostgreSQL name `pgName`) and a DatabaseUser `svc` of `level` in `ns`. */
function app(ns: string, pgName: string, level: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: app, namespace: ${ns} }
spec:
  clusterRef: { name: main }
  databaseName: ${pgName}
  deletionPolicy: Delete
---
apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: svc, namespace: ${ns} }
spec:
  databaseRef: { name: app }
  privileges: ${level}
`;
}

/** The role's oid ("" when there is none): a role recreated under the same name has a new one. */
async function roleOid(env: TestEnv, role: string): Promise<string> {
  return (await env.pg.superSql(
    `SELECT oid FROM pg_roles WHERE rolname = '${role.replaceAll("'", "''")}'`,
  )).trim();
}

Deno.test({ name: "resync repairs drift made on the server by hand", ...opts }, async (t) => {
  const { env: e, port } = await startWith([
    "--resync-period",
    "4s",
    "--drift-scan-interval",
    "0s",
  ]);
  await using env = e;
  const ns = await env.namespace("drift");
  await env.kube.apply(`${app(ns, "drift_app", "readwrite")}
---
apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: mig, namespace: ${ns} }
spec:
  databaseRef: { name: app }
  privileges: admin
`);
  await env.waitPhase("databaseuser", "svc", "Ready", {
    namespace: ns,
    timeoutMs: budget("ready"),
  });
  const secret = { namespace: ns, name: "svc-credentials" };
  const creds = (await secretData(env, secret))!;
  const login = { user: creds.username!, password: creds.password!, database: "drift_app" };
  assert(await runsAs(env.pg, login), "the Secret's password logs in");
  await env.waitPhase("databaseuser", "mig", "Ready", {
    namespace: ns,
    timeoutMs: budget("ready"),
  });
  const mig = (await secretData(env, { namespace: ns, name: "mig-credentials" }))!;
  assert(
    await runsAs(
      env.pg,
      { user: mig.username!, password: mig.password!, database: "drift_app" },
      { sql: "CREATE TABLE drift_t (id int)" },
    ),
    "the admin user creates a table",
  );
  const insert = { sql: "INSERT INTO drift_t VALUES (1)" };
  assert(await runsAs(env.pg, login, insert), "readwrite writes the table");

  const versions = async () => {
    const of = async (kind: string, name: string) =>
      (await env.getJson<Obj>(kind, name, ns))?.metadata.resourceVersion;
    return {
      database: await of("database", "app"),
      user: await of("databaseuser", "svc"),
      secret: await of("secret", "svc-credentials"),
    };
  };

  await t.step("a resync that finds nothing to do writes nothing, nor reads a Secret", async () => {
    const before = await versions();
    const requests = await apiserverRequests(env);
    const start = await resyncs(port, "databaseuser");
    // Two more ticks: every key was queued and reconciled at least once since `before`.
    await waitFor(
      "two resync periods",
      async () =>
        (await resyncs(port, "databaseuser")) >= start + 2 &&
        (await resyncs(port, "database")) >= 2,
      { timeoutMs: budget("react") },
    );
    // Only the operator talks to the apiserver in this window (the waits read its /metrics):
    // each Secret it needs is served from memory while its resourceVersion stays the same.
    const after = await apiserverRequests(env);
    assertEquals((after["GET secrets"] ?? 0) - (requests["GET secrets"] ?? 0), 0);
    assertEquals(await versions(), before);
  });

  await t.step("a role dropped by hand comes back, and the same password logs in", async () => {
    const dropped = await roleOid(env, login.user);
    assert(dropped !== "", "the role exists before the DROP");
    await env.pg.superSql(`DROP OWNED BY "${login.user}"; DROP ROLE "${login.user}"`, {
      database: "drift_app",
    });
    const before = (await env.getJson<Obj>("databaseuser", "svc", ns))!.metadata.generation;
    // A new role (a new oid), not the old one: a resync may recreate it within milliseconds of
    // the DROP, before any "it is gone" check could look.
    await waitFor(
      "the role recreated",
      async () => (await roleOid(env, login.user)) !== dropped && await runsAs(env.pg, login),
      { timeoutMs: budget("react") },
    );
    // Its privileges are back too: readwrite writes the table again.
    await waitFor("readwrite restored", () => runsAs(env.pg, login, insert), {
      timeoutMs: budget("react"),
    });
    assertEquals((await env.getJson<Obj>("databaseuser", "svc", ns))!.metadata.generation, before);
    assertEquals((await secretData(env, secret))!.password, login.password);
  });
});

Deno.test(
  { name: "the drift scan brings back what was dropped, without a resync", ...opts },
  async () => {
    const { env: e, port } = await startWith([
      "--resync-period",
      "0s",
      "--drift-scan-interval",
      "3s",
    ]);
    await using env = e;
    const ns = await env.namespace("scan");
    await env.kube.apply(app(ns, "scan_app", "readonly"));
    await env.waitPhase("databaseuser", "svc", "Ready", {
      namespace: ns,
      timeoutMs: budget("ready"),
    });
    const c = (await secretData(env, { namespace: ns, name: "svc-credentials" }))!;
    const login = { user: c.username!, password: c.password!, database: "scan_app" };
    assert(await runsAs(env.pg, login));
    // The user's role and the database's readonly group, dropped by hand.
    const dropped = await roleOid(env, login.user);
    assert(dropped !== "", "the role exists before the DROP");
    await env.pg.superSql(
      `DROP OWNED BY "${login.user}", scan_app_readonly; DROP ROLE "${login.user}"; ` +
        `DROP ROLE scan_app_readonly`,
      { database: "scan_app" },
    );
    await waitFor(
      "the role back (a new oid)",
      async () => (await roleOid(env, login.user)) !== dropped && await runsAs(env.pg, login),
      { timeoutMs: budget("react") },
    );
    await waitFor(
      "the readonly group back, with the user in it",
      async () =>
        (await env.pg.superSql(
          `SELECT pg_has_role('${login.user}', 'scan_app_readonly', 'MEMBER')`,
        )).trim() === "t",
      { timeoutMs: budget("react") },
    );
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert(/dbtether_drift_found_total\{kind="DatabaseUser"\} [1-9]/.test(text), "counted");
    assertEquals(await resyncs(port, "databaseuser"), 0, "no resync ran");
  },
);
