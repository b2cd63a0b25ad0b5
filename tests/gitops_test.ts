/**
 * The Argo CD health check of docs/gitops/health.lua, run with Lua 5.1 (the dialect of Argo CD's
 * gopher-lua) on real objects: every example dbtether reconciled is Healthy, a Database refused
 * for claiming a database it did not create is Degraded with its reason, an object dbtether has not
 * seen yet is Progressing. docs/gitops.md registers the script, verbatim, for every kind.
 */
import { parse, parseAllDocuments } from "yaml";
import { ALL_KINDS } from "../crds/all.ts";
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { applyExamples, waitExamplesReady } from "./helpers/install.ts";

const root = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };
const SCRIPT = await Deno.readTextFile(`${root}docs/gitops/health.lua`);

/** A JSON value as a Lua table constructor. */
function lua(v: unknown): string {
  if (v === null || v === undefined) return "nil";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `{${v.map(lua).join(",")}}`;
  return `{${
    Object.entries(v as Record<string, unknown>).map(([k, x]) => `[${JSON.stringify(k)}]=${lua(x)}`)
      .join(",")
  }}`;
}

/** What Argo CD would show for `obj`: the script's status and message. */
async function health(obj: unknown): Promise<{ status: string; message: string }> {
  const program = `obj = ${lua(obj)}\nlocal hs = (function()\n${SCRIPT}\nend)()\n` +
    `io.write(hs.status, "\\n", hs.message)`;
  const out = await new Deno.Command("lua5.1", {
    args: ["-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const w = out.stdin.getWriter();
  await w.write(new TextEncoder().encode(program));
  await w.close();
  const r = await out.output();
  const text = new TextDecoder().decode(r.stdout);
  assert(r.success, new TextDecoder().decode(r.stderr));
  const [status, ...rest] = text.split("\n");
  return { status: status!, message: rest.join("\n") };
}

Deno.test({ name: "docs/gitops.md gives every kind health.lua verbatim", ...opts }, async () => {
  const doc = await Deno.readTextFile(`${root}docs/gitops.md`);
  const cm = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .flatMap((m) => parseAllDocuments(m[1]!).map((d) => d.toJS()))
    .find((o) => o?.kind === "ConfigMap");
  // Argo CD reads this key as YAML, anchors included.
  const custom = parse(cm.data["resource.customizations"]) as Record<
    string,
    { "health.lua": string }
  >;
  const kinds = ALL_KINDS.map((k) => `${k.group}/${k.kind}`).sort();
  assertEquals(Object.keys(custom).sort(), kinds);
  for (const k of kinds) assertEquals(custom[k]!["health.lua"], SCRIPT, k);
});

Deno.test({ name: "the Argo CD health check reads dbtether's status", ...opts }, async (t) => {
  await using env = await startEnv({
    pg: true,
    program: true,
    programArgs: ["--postgresdatabase-cluster", "my-aurora-cluster"],
  });
  await env.kube.kubectl(["create", "namespace", "postgres-operator-system"], { check: true });
  const backupDir = await Deno.makeTempDir({ prefix: "dbtether-gitops-" });

  await t.step("an object dbtether has not reconciled is Progressing", async () => {
    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: not-yet, namespace: default }
spec: { clusterRef: { name: no-such-cluster } }
`);
    const fresh = await env.getJson("database", "not-yet", "default");
    assertEquals((await health({ ...fresh, status: undefined })).status, "Progressing");
  });

  await t.step("every reconciled example is Healthy", async () => {
    await applyExamples(env, { backupDir });
    await waitExamplesReady(env);
    const kinds =
      "dbclusters,databases,databaseusers,postgresdatabases,backupstorages,backups,restores";
    const list = JSON.parse(
      (await env.kube.kubectl(["get", kinds, "-A", "-o", "json"], { check: true })).stdout,
    ) as { items: { kind: string; metadata: { name: string } }[] };
    const examples = list.items.filter((o) => o.metadata.name !== "not-yet");
    assertEquals(examples.length, 10);
    for (const o of examples) {
      const h = await health(o);
      assertEquals(h.status, "Healthy", `${o.kind} ${o.metadata.name}: ${h.message}`);
    }
  });

  await t.step("a refused Database is Degraded with its reason", async () => {
    await env.pg.superSql("CREATE DATABASE someone_elses");
    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: claims-foreign, namespace: default }
spec: { clusterRef: { name: my-aurora-cluster }, databaseName: someone_elses }
`);
    const refused = await env.waitPhase("database", "claims-foreign", "Failed", {
      namespace: "default",
    });
    const h = await health(refused);
    assertEquals(h.status, "Degraded");
    assertMatch(h.message, /^DatabaseExistsUnmanaged: /);
  });
  await Deno.remove(backupDir, { recursive: true }).catch(() => {});
});
