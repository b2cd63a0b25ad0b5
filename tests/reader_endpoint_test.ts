/**
 * DBCluster.spec.readerEndpoint against a real apiserver and a real PostgreSQL: the reader
 * endpoint names the same server by another address (localhost beside 127.0.0.1). Without it,
 * Secrets carry exactly the keys of old and are not rewritten; with it, every template gains
 * its reader keys and the reader URI logs in; removing it restores the data byte for byte.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { decodeSecretData, mergePatch, type Obj, secretData } from "./helpers/fixtures.ts";
import { runProgram } from "./helpers/program.ts";
import { resource } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** The raw template's keys before reader endpoints. */
const RAW_KEYS = ["database", "host", "password", "port", "uri", "username"];

Deno.test({ name: "DBCluster readerEndpoint", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await env.kube.apply(env.clusterManifest("main"));
  assertEquals(env.pg.host, "127.0.0.1", "the reader address below must differ from it");
  const ns = await env.namespace("reader");
  const manifests = [
    resource("Database", { name: "shop", ns, spec: "clusterRef: { name: main }\n" }),
    resource("DatabaseUser", { name: "app", ns, spec: "databaseRef: { name: shop }\n" }),
    resource("DatabaseUser", {
      name: "env",
      ns,
      spec: "databaseRef: { name: shop }\nsecret: { template: DB }\n",
    }),
  ].join("---\n");
  await env.kube.apply(manifests);
  const ref = { namespace: ns, name: "app-credentials" };
  const envRef = { namespace: ns, name: "env-credentials" };
  const secret = async (name: string) =>
    await env.getJson<Obj & { data: Record<string, string> }>("secret", name, ns);
  let before: (Obj & { data: Record<string, string> }) | undefined;
  const dir = await Deno.makeTempDir({ prefix: "dbtether-reader-" });
  await Deno.writeTextFile(`${dir}/m.yaml`, manifests);
  const plan = () =>
    runProgram(["plan", "-f", `${dir}/m.yaml`, "--kubeconfig", env.kube.kubeconfigPath]);

  await t.step("unset: the keys of old, and nothing to rewrite", async () => {
    await env.waitPhase("databaseuser", "app", "Ready", { namespace: ns });
    await env.waitPhase("databaseuser", "env", "Ready", { namespace: ns });
    before = await secret("app-credentials");
    assertEquals(Object.keys(before!.data).sort(), RAW_KEYS);
    // The controllers' own planner, run by plan, would write nothing.
    const r = await plan();
    assertEquals(r.code, 0, r.stdout + r.stderr);
  });

  await t.step(
    "plan, with the controller stopped, shows the Secret updates it would make",
    async () => {
      await env.killProgram();
      await mergePatch(env, { kind: "dbcluster", name: "main" }, {
        spec: { readerEndpoint: { host: "localhost" } },
      });
      const r = await plan();
      assertEquals(r.code, 2, r.stdout + r.stderr);
      assert(
        r.stdout.includes(
          `secret update "app-credentials" (keys: database, host, password, port, readerHost, ` +
            `readerPort, uri, uri_ro, username)`,
        ),
        r.stdout,
      );
      assert(r.stdout.includes(`secret update "env-credentials" (keys: DB_HOST,`), r.stdout);
      assert(!/ {2}sql/.test(r.stdout), r.stdout);
      await env.startProgram();
    },
  );

  await t.step("set: every Secret gains the reader keys, and the reader URI logs in", async () => {
    const data = await waitFor("uri_ro in the app Secret", async () => {
      const d = await secretData(env, ref);
      return d?.uri_ro ? d : undefined;
    }, { timeoutMs: budget("ready") });
    assertEquals(data.readerHost, "localhost");
    assertEquals(data.readerPort, String(env.pg.port));
    assertEquals(data.host, "127.0.0.1");
    assertEquals(
      data.password,
      decodeSecretData(before!.data).password,
      "the password is not rotated",
    );
    const psql = await new Deno.Command(`${env.pg.clientDir}/psql`, {
      args: [data.uri_ro!, "-At", "-c", "SELECT current_user || ' ' || current_database()"],
      env: { PGCONNECT_TIMEOUT: "10" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(psql.stdout).trim();
    assertEquals(psql.code, 0, new TextDecoder().decode(psql.stderr));
    assertEquals(out, "app shop");
    const envData = await waitFor("DB_READER_HOST in the env Secret", async () => {
      const d = await secretData(env, envRef);
      return d?.DB_READER_HOST ? d : undefined;
    }, { timeoutMs: budget("ready") });
    assertEquals([envData.DB_READER_HOST, envData.DB_READER_PORT], [
      "localhost",
      String(env.pg.port),
    ]);
  });

  await t.step("removed: the Secret's data is byte for byte what it was", async () => {
    await env.kube.kubectl(
      [
        "patch",
        "dbcluster",
        "main",
        "--type",
        "json",
        "-p",
        '[{"op":"remove","path":"/spec/readerEndpoint"}]',
      ],
      { check: true },
    );
    const after = await waitFor("the reader keys gone", async () => {
      const s = await secret("app-credentials");
      return s && !("uri_ro" in s.data) ? s : undefined;
    }, { timeoutMs: budget("ready") });
    assertEquals(after.data, before!.data);
    assert(!("DB_READER_HOST" in (await secretData(env, envRef))!));
  });
  await Deno.remove(dir, { recursive: true });
});
