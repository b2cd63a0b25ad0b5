/**
 * dbtether's README, end to end: its manifests applied verbatim, only the server address and
 * admin password replaced as the README tells users to, reach the state its "Check status"
 * section shows, and the generated Secret logs in.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { pointReadmeAtServer, readmeManifests } from "./helpers/seed.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  { name: "README: manifests apply verbatim and reach the state it shows", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: true });
    const blocks = await readmeManifests();
    assertEquals(blocks.length, 4, "Secret, DBCluster, Database, DatabaseUser");

    await t.step("every manifest applies verbatim", async () => {
      await env.kube.kubectl(["create", "namespace", "postgres-operator-system"], { check: true });
      for (const b of blocks) await env.kube.apply(b);
    });

    await t.step(
      "with the endpoint and admin password replaced, everything becomes Ready",
      async () => {
        await pointReadmeAtServer(env);
        await env.startProgram();
        await env.waitPhase("dbcluster", "my-aurora-cluster", "Connected");
        await env.waitPhase("database", "my-app-db", "Ready", { namespace: "default" });
        await env.waitPhase("databaseuser", "my-app-readonly", "Ready", { namespace: "default" });
      },
    );

    await t.step("kubectl get shows the README's columns and values", async () => {
      const get = async (kind: string, all = false) =>
        (await env.kube.kubectl(["get", kind, ...(all ? ["-A"] : [])], { check: true })).stdout;
      const clusters = await get("dbclusters");
      assert(/^NAME\s+ENDPOINT\s+PHASE\s+VERSION\s+AGE$/m.test(clusters), clusters);
      assert(
        new RegExp(
          `^my-aurora-cluster\\s+127\\.0\\.0\\.1\\s+Connected\\s+${env.pg.major}\\.\\d+\\s+\\S+$`,
          "m",
        ).test(clusters),
        clusters,
      );
      const dbs = await get("databases", true);
      assert(/^NAMESPACE\s+NAME\s+CLUSTER\s+DATABASE\s+PHASE\s+AGE$/m.test(dbs), dbs);
      assert(/^default\s+my-app-db\s+my-aurora-cluster\s+my_app\s+Ready\s+\S+$/m.test(dbs), dbs);
      const users = await get("databaseusers", true);
      assert(
        /^NAMESPACE\s+NAME\s+DATABASE\s+USERNAME\s+PRIVILEGES\s+PHASE\s+AGE$/m.test(users),
        users,
      );
      assert(
        /^default\s+my-app-readonly\s+my-app-db\s+my-app-readonly\s+readonly\s+Ready\s+\S+$/m.test(
          users,
        ),
        users,
      );
    });

    await t.step("the README's command gets a password that logs in, read-only", async () => {
      const r = await env.kube.kubectl([
        "get",
        "secret",
        "my-app-readonly-credentials",
        "-o",
        "jsonpath={.data.password}",
      ], { check: true });
      const password = atob(r.stdout);
      assert(password.length >= 16, "default length 16");
      const ok = await env.pg.psql("select current_user", {
        user: "my-app-readonly",
        password,
        database: "my_app",
      });
      assertEquals(ok.code, 0, ok.stderr);
      assertEquals(ok.stdout.trim().split("\n").includes("my-app-readonly"), true, ok.stdout);
      const write = await env.pg.psql("create table t (id int)", {
        user: "my-app-readonly",
        password,
        database: "my_app",
      });
      assert(write.code !== 0 && /permission denied/.test(write.stderr), write.stderr);
      assert(!env.program!.logs().includes(password), "the password is not logged");
    });
  },
);
