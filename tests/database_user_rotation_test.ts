/**
 * DatabaseUser rotation and crash safety against the real servers: Alternating rotation seen by a
 * client that re-reads the Secret and reconnects every 50 ms, and `dbtether run` killed with
 * SIGKILL at random moments while 50 users are created.
 */
import { budget } from "./helpers/timeouts.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import postgres from "postgres";
import { SecretResource } from "../controllers/runtime/kube.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { annotate, decodeSecretData, runsAs } from "./helpers/fixtures.ts";
import { resource } from "./helpers/tenant.ts";
import { waitFor } from "./helpers/wait.ts";

// Read through the API client, not kubectl: the client below re-reads it every 50 ms.
async function apiSecretData(
  env: TestEnv,
  ref: { namespace: string; name: string },
): Promise<Record<string, string> | undefined> {
  const s = await env.client.find<{ data?: Record<string, string> }>(SecretResource, ref);
  return s?.data ? decodeSecretData(s.data) : undefined;
}

const database = (name: string, ns: string) =>
  resource("Database", { name, ns, spec: "clusterRef: { name: main }\n" });

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  { name: "Alternating rotation: zero failed logins through 10 rotations", ...opts },
  async () => {
    await using env = await startEnv({
      pg: { extraConf: ["log_statement = 'all'"] },
      program: true,
    });
    await env.kube.apply(env.clusterManifest("main"));
    const ns = await env.namespace("alt");
    await env.kube.apply(database("app", ns));
    await env.kube.apply(resource("DatabaseUser", {
      name: "alt",
      ns,
      spec:
        "databaseRef: { name: app }\nprivileges: readwrite\nrotation: { strategy: Alternating }\n",
    }));
    await env.waitPhase("databaseuser", "alt", "Ready", { namespace: ns });
    const seen = new Set<string>();
    let attempts = 0, failures = 0, stop = false;
    const errors: string[] = [];
    const client = (async () => {
      while (!stop) {
        const d = await apiSecretData(env, { namespace: ns, name: "alt-credentials" });
        if (d) {
          seen.add(d.password!);
          attempts++;
          const sql = postgres({
            host: env.pg.host,
            port: env.pg.port,
            user: d.username!,
            password: d.password!,
            database: "app",
            max: 1,
            connect_timeout: 5,
            onnotice: () => {},
          });
          try {
            await sql`SELECT 1`;
          } catch (e) {
            failures++;
            errors.push(`${d.username}: ${(e as Error).message}`);
          } finally {
            await sql.end({ timeout: 1 });
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const roles: string[] = [];
    for (let i = 1; i <= 10; i++) {
      const before =
        (await apiSecretData(env, { namespace: ns, name: "alt-credentials" }))!.password;
      await annotate(
        env,
        { kind: "databaseuser", namespace: ns, name: "alt" },
        `dbtether.io/rotate=${i}`,
      );
      const d = await waitFor(`rotation ${i}`, async () => {
        const x = await apiSecretData(env, { namespace: ns, name: "alt-credentials" });
        return x && x.password !== before ? x : undefined;
      }, { timeoutMs: budget("react") });
      roles.push(d.username!);
      // Apps pick the Secret up late: give the client time to see this one.
      await new Promise((r) => setTimeout(r, 300));
    }
    stop = true;
    await client;
    assertEquals(failures, 0, errors.join("\n"));
    assert(attempts > 60, `client made ${attempts} attempts`);
    assertEquals(roles, [
      "alt_b",
      "alt",
      "alt_b",
      "alt",
      "alt_b",
      "alt",
      "alt_b",
      "alt",
      "alt_b",
      "alt",
    ]);
    const u = await env.getJson<{ status: { activeRole: string } }>("databaseuser", "alt", ns);
    assertEquals(u?.status.activeRole, "alt");
    const log = await env.pg.readLog();
    for (const p of seen) assert(!log.includes(p), "a password reached the server log");
  },
);

Deno.test(
  { name: "SIGKILL at random moments while 50 users are created converges", ...opts },
  async () => {
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("main"));
    const ns = await env.namespace("kill");
    await env.kube.apply(database("many", ns));
    await env.waitPhase("database", "many", "Ready", { namespace: ns });
    const names = Array.from({ length: 50 }, (_, i) => `u${String(i).padStart(2, "0")}`);
    await env.kube.apply(
      names.map((n, i) =>
        `apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: ${n}, namespace: ${ns} }
spec:
  databaseRef: { name: many }
  privileges: ${i % 2 ? "readwrite" : "readonly"}
  rotation: { strategy: ${i % 5 === 0 ? "Alternating" : "InPlace"} }
`
      ).join("---\n"),
    );
    for (let k = 0; k < 6; k++) {
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 1500));
      await env.restartProgram("SIGKILL");
      // Rotations are interrupted too.
      if (k === 3) {
        await env.kube.kubectl([
          "annotate",
          "--overwrite",
          "databaseuser",
          "--all",
          "-n",
          ns,
          "dbtether.io/rotate=k3",
        ], { check: true });
      }
    }
    /** `kubectl get databaseusers` of the namespace in the `output` format. */
    const users = (output: string) =>
      env.kube.kubectl(["get", "databaseusers", "-n", ns, "-o", output]);
    const allReady = waitFor("all 50 users Ready", async () => {
      const r = await users("jsonpath={.items[*].status.phase}");
      const phases = r.stdout.split(" ").filter(Boolean);
      return phases.length === 50 && phases.every((p) => p === "Ready");
    }, { timeoutMs: budget("bulk"), intervalMs: 1000 });
    await allReady.catch(async (e) => {
      const r = await users(
        "custom-columns=NAME:.metadata.name,PHASE:.status.phase,MESSAGE:.status.message",
      );
      throw new Error(`${(e as Error).message}\n${r.stdout}`);
    });
    const roles = (await env.pg.superSql(
      `SELECT rolname FROM pg_roles WHERE rolname ~ '^u[0-9]{2}(_b)?$' ORDER BY 1`,
    )).split("\n").map((s) => s.trim()).filter(Boolean);
    const want = names.flatMap((n, i) => i % 5 === 0 ? [n, `${n}_b`] : [n]).sort();
    if (JSON.stringify(roles) !== JSON.stringify(want)) {
      const missing = want.filter((r) => !roles.includes(r));
      const u = await env.kube.kubectl([
        "get",
        "databaseuser",
        missing[0]!.replace(/_b$/, ""),
        "-n",
        ns,
        "-o",
        "yaml",
      ]);
      const again = await env.pg.superSql(
        `SELECT count(*) FROM pg_roles WHERE rolname ~ '^u[0-9]{2}(_b)?$'`,
      );
      console.error(`missing ${missing.join(",")}\ncount now ${again}\n${u.stdout}`);
    }
    assertEquals(roles, want);
    for (const n of names) {
      const d = await waitFor(
        `Secret of ${n}`,
        async () => await apiSecretData(env, { namespace: ns, name: `${n}-credentials` }),
      );
      assert(
        await runsAs(env.pg, { user: d.username!, password: d.password!, database: "many" }),
        `${n} logs in`,
      );
    }
  },
);
