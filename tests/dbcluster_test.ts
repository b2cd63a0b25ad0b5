/**
 * DBCluster against a real apiserver and a real PostgreSQL: connection, version, the README's
 * columns, credential problems, credentials from the environment, and an outage.
 */
import { budget } from "./helpers/timeouts.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { mergePatch, readyOf } from "./helpers/fixtures.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Cluster = {
  status?: {
    phase?: string;
    version?: string;
    message?: string;
    conditions?: { type: string; status: string; reason: string }[];
  };
};

/** A DBCluster `name` at 127.0.0.1:`port` (sslMode: the default, require); `credentials` is its one credentials line. */
function localCluster(name: string, port: number, credentials: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: DBCluster
metadata: { name: ${name} }
spec:
  endpoint: 127.0.0.1
  port: ${port}
  ${credentials}
`;
}

Deno.test({
  name: "DBCluster connects, reports its version and reacts to credential changes and outages",
  ...opts,
}, async (t) => {
  await using env = await startEnv({
    pg: true,
    program: true,
    programEnv: { TEST_PG_USER: "", TEST_PG_PASS: "" },
  });
  await env.kube.apply(env.clusterManifest("main", { extraSpec: "  healthCheckInterval: 2s\n" }));

  await t.step(
    "reaches Connected with the short server version, shown in the README's columns",
    async () => {
      const c = await env.waitPhase("dbcluster", "main", "Connected") as Cluster;
      assertEquals(c.status?.version, env.pg.version);
      assertEquals(readyOf(c)?.reason, "Connected");
      const table = (await env.kube.kubectl(["get", "dbclusters"], { check: true })).stdout;
      assert(/^NAME\s+ENDPOINT\s+PHASE\s+VERSION\s+AGE$/m.test(table), table);
      assert(
        new RegExp(
          `^main\\s+127\\.0\\.0\\.1\\s+Connected\\s+${env.pg.version.replace(".", "\\.")}\\s+`,
          "m",
        ).test(table),
        table,
      );
    },
  );

  await t.step(
    "a wrong password gives AuthenticationFailed; fixing the Secret reconnects at once",
    async () => {
      await mergePatch(env, { kind: "secret", namespace: "default", name: "main-admin" }, {
        stringData: { password: "wrong-password" },
      });
      await waitFor(
        "AuthenticationFailed",
        async () =>
          readyOf(await env.getJson<Cluster>("dbcluster", "main"))?.reason ===
            "AuthenticationFailed",
      );
      const c = await env.getJson<Cluster>("dbcluster", "main");
      assertEquals(c?.status?.phase, "Failed");
      assert(!c?.status?.message?.includes("wrong-password"), "no password in status");
      await mergePatch(env, { kind: "secret", namespace: "default", name: "main-admin" }, {
        stringData: { password: env.pg.admin.password },
      });
      await env.waitPhase("dbcluster", "main", "Connected", { timeoutMs: budget("react") });
    },
  );

  await t.step(
    "PostgreSQL stopped → ClusterUnreachable within the health interval; back → Connected",
    async () => {
      await env.pg.stop();
      await waitFor(
        "ClusterUnreachable",
        async () =>
          readyOf(await env.getJson<Cluster>("dbcluster", "main"))?.reason === "ClusterUnreachable",
        { timeoutMs: budget("react") },
      );
      await new Promise((r) => setTimeout(r, 3000));
      assert(env.program?.process.pid, "the program keeps running");
      await env.pg.start();
      await env.waitPhase("dbcluster", "main", "Connected", { timeoutMs: budget("recovery") });
    },
  );

  await t.step("a missing Secret gives CredentialsMissing", async () => {
    await env.kube.apply(
      localCluster(
        "nosecret",
        env.pg.port,
        "credentialsSecretRef: { name: does-not-exist, namespace: default }",
      ),
    );
    await waitFor(
      "CredentialsMissing",
      async () =>
        readyOf(await env.getJson<Cluster>("dbcluster", "nosecret"))?.reason ===
          "CredentialsMissing",
    );
    const events = (await env.kube.kubectl([
      "get",
      "events",
      "-A",
      "--field-selector",
      "involvedObject.name=nosecret",
    ], { check: true })).stdout;
    assert(/CredentialsMissing/.test(events), events);
  });

  await t.step("the admin password never appears in the program's logs", () => {
    assert(!env.program!.logs().includes(env.pg.admin.password));
  });
});

Deno.test({ name: "DBCluster with credentialsFromEnv", ...opts }, async () => {
  await using env = await startEnv({ pg: true });
  await env.startProgram([], { ADMIN_USER: env.pg.admin.user, ADMIN_PASS: env.pg.admin.password });
  await env.kube.apply(
    localCluster(
      "fromenv",
      env.pg.port,
      "credentialsFromEnv: { username: ADMIN_USER, password: ADMIN_PASS }",
    ),
  );
  try {
    await env.waitPhase("dbcluster", "fromenv", "Connected");
  } catch (e) {
    console.error(env.program?.logs().slice(-3000));
    throw e;
  }
});
