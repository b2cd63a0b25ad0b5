/**
 * The DBCluster's status follows its server between health checks: when a Database's connect
 * finds the server gone, the DBCluster says ClusterUnreachable at once (not at its next check,
 * an hour away here), and Connected again once the server is back. What one tenant does to its
 * own database (closes it to connections, has it dropped, has its role refused a login) says
 * nothing of the server: the shared DBCluster is not checked again, stays Connected, and another
 * tenant's Database and DatabaseUser on it still reconcile.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { annotate, readyOf, waitReason } from "./helpers/fixtures.ts";
import { resource } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Conditioned = {
  status?: {
    phase?: string;
    lastCheckTime?: string;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
};

function database(ns: string, name: string, extra = ""): string {
  return resource("Database", { name, ns, spec: `clusterRef: { name: main }\n${extra}` });
}

function user(ns: string, name: string, db: string): string {
  return resource("DatabaseUser", {
    name,
    ns,
    spec: `database: { name: ${db}, privileges: readwrite }\n`,
  });
}

/** Waits until the DatabaseUser is not Ready with a message matching `why`. */
async function userFails(env: TestEnv, o: { ns: string; name: string; why: RegExp }) {
  await waitFor(`user ${o.name} to fail with ${o.why}`, async () => {
    const r = readyOf(await env.getJson<Conditioned>("databaseuser", o.name, o.ns));
    return r && r.status !== "True" && o.why.test(r.message);
  }, { timeoutMs: budget("react") });
}

/** The DBCluster's last health check: a connect that blamed the server would run a new one. */
async function lastCheck(env: TestEnv): Promise<{ time: string; phase: string; ready: string }> {
  const c = await env.getJson<Conditioned>("dbcluster", "main");
  const ready = readyOf(c);
  return {
    time: c?.status?.lastCheckTime ?? "",
    phase: c?.status?.phase ?? "",
    ready: `${ready?.status}/${ready?.reason}`,
  };
}

/**
 * Another tenant's Database and DatabaseUser reach Ready on the same cluster, and by then the
 * DBCluster has not been checked again since `before` (the check a server-wide failure starts
 * runs at once, well within the other tenant's reconciles).
 */
async function othersUnaffected(
  env: TestEnv,
  before: { time: string; phase: string; ready: string },
  step: string,
): Promise<void> {
  const other = await env.namespace(`other-${step}`);
  await env.kube.apply(database(other, "theirs", `databaseName: theirs_${step}\n`));
  await env.waitPhase("database", "theirs", "Ready", { namespace: other });
  await env.kube.apply(user(other, `theirs-${step}`, "theirs"));
  await env.waitPhase("databaseuser", `theirs-${step}`, "Ready", { namespace: other });
  const after = await lastCheck(env);
  assertEquals(after, before, `the DBCluster was checked again after ${step}`);
  assertEquals(after.phase, "Connected");
}

Deno.test({
  name: "DBCluster status: a tenant's own database cannot make it look down; the server can",
  ...opts,
}, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  // An hour between health checks: only the other controllers' connects can change the status.
  await env.kube.apply(env.clusterManifest("main", { extraSpec: "  healthCheckInterval: 1h\n" }));
  await env.waitPhase("dbcluster", "main", "Connected");
  const ns = await env.namespace("reach");
  await env.kube.apply(database(ns, "first"));
  await env.waitPhase("database", "first", "Ready", { namespace: ns });

  await t.step("a Database closed to connections, and a user logging in to it", async () => {
    const before = await lastCheck(env);
    assertEquals(before.ready, "True/Connected");
    await env.kube.apply(
      database(ns, "closed", "databaseName: r_closed\nallowConnections: false\n"),
    );
    await env.waitPhase("database", "closed", "Ready", { namespace: ns });
    // Its password check logs in to the closed database: 55000, that database's own refusal.
    await env.kube.apply(user(ns, "closed", "closed"));
    await userFails(env, { ns, name: "closed", why: /accepting connections|not currently/i });
    await othersUnaffected(env, before, "closed");
  });

  await t.step("a database dropped by hand, and a new user on it", async () => {
    const before = await lastCheck(env);
    assertEquals(before.ready, "True/Connected");
    await env.kube.apply(database(ns, "dropped", "databaseName: r_dropped\n"));
    await env.waitPhase("database", "dropped", "Ready", { namespace: ns });
    await env.pg.superSql("DROP DATABASE r_dropped WITH (FORCE)");
    // The new user's grants connect to the database that is gone: 3D000.
    await env.kube.apply(user(ns, "dropped", "dropped"));
    await userFails(env, { ns, name: "dropped", why: /does not exist/ });
    await othersUnaffected(env, before, "dropped");
  });

  await t.step("a user's role made NOLOGIN by hand, then its password rotated", async () => {
    const before = await lastCheck(env);
    assertEquals(before.ready, "True/Connected");
    await env.kube.apply(user(ns, "nologin", "first"));
    await env.waitPhase("databaseuser", "nologin", "Ready", { namespace: ns });
    const role = (await env.pg.superSql(
      `SELECT rolname FROM pg_roles WHERE rolname LIKE '%nologin%' ORDER BY rolname LIMIT 1`,
    )).trim();
    assert(role, "the user's role");
    await env.pg.superSql(`ALTER ROLE "${role}" NOLOGIN`);
    await annotate(
      env,
      { kind: "databaseuser", name: "nologin", namespace: ns },
      "dbtether.io/rotate=r1",
    );
    await othersUnaffected(env, before, "nologin");
  });

  await t.step("the server down: unreachable at once, and back", async () => {
    await env.pg.stop();
    // Something to do while it is down: a Database's reconcile connects and finds it gone.
    await env.kube.apply(database(ns, "second"));
    await waitReason(env, {
      kind: "database",
      namespace: ns,
      name: "second",
      reason: "ClusterUnreachable",
    });
    const down = await waitFor("the DBCluster to say ClusterUnreachable", async () => {
      const c = await env.getJson<Conditioned>("dbcluster", "main");
      return readyOf(c)?.reason === "ClusterUnreachable" ? c : undefined;
    }, { timeoutMs: budget("react") });
    assert(down.status?.phase !== "Connected", JSON.stringify(down.status));
    assert(/unreachable/.test(readyOf(down)?.message ?? ""), readyOf(down)?.message);

    await env.pg.start();
    await env.waitPhase("database", "second", "Ready", {
      namespace: ns,
      timeoutMs: budget("recovery"),
    });
    await env.waitPhase("dbcluster", "main", "Connected", { timeoutMs: budget("recovery") });
  });
});
