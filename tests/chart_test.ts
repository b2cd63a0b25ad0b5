/**
 * The Helm chart: it lints, renders into objects a real apiserver accepts, ships the generated
 * CRDs unchanged, and its RBAC is enough: the program, authenticated as the chart's service
 * account and holding only the chart's permissions, runs DBCluster → Database → DatabaseUser to
 * Ready with leader election on.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { startProgram } from "./helpers/program.ts";

const root = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };

async function helm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = new TextDecoder().decode(
    (await new Deno.Command("bash", {
      args: [`${root}scripts/install-helm.sh`],
      stdout: "piped",
      stderr: "inherit",
    }).output()).stdout,
  ).trim();
  const out = await new Deno.Command(bin, {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { HELM_CACHE_HOME: "/tmp/dbtether-helm-cache" },
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test(
  { name: "the Helm chart lints, renders, installs and its RBAC suffices", ...opts },
  async (t) => {
    await t.step("helm lint", async () => {
      const r = await helm(["lint", `${root}chart`]);
      assertEquals(r.code, 0, r.stdout + r.stderr);
    });

    await t.step("chart/crds are the generated CRDs, byte for byte", async () => {
      for await (const e of Deno.readDir(`${root}chart/crds`)) {
        assertEquals(
          await Deno.readTextFile(`${root}chart/crds/${e.name}`),
          await Deno.readTextFile(`${root}crds/generated/${e.name}`),
          e.name,
        );
      }
    });

    await using env = await startEnv({ pg: true });
    const ns = "dbtether-system";
    await env.kube.kubectl(["create", "namespace", ns], { check: true });
    const rendered = await helm([
      "template",
      "dbtether",
      `${root}chart`,
      "-n",
      ns,
      "--set",
      "watchNamespaces={apps}",
    ]);
    assertEquals(rendered.code, 0, rendered.stderr);

    await t.step("the rendered objects are accepted by a real apiserver", async () => {
      const r = await env.kube.kubectl(["apply", "-n", ns, "-f", "-"], { stdin: rendered.stdout });
      assertEquals(r.code, 0, r.stderr);
      assert(/deployment.apps\/dbtether created/.test(r.stdout), r.stdout);
      const dep = JSON.parse(
        (await env.kube.kubectl(["get", "deployment", "dbtether", "-n", ns, "-o", "json"], {
          check: true,
        })).stdout,
      );
      const args: string[] = dep.spec.template.spec.containers[0].args;
      assert(args.includes("--leader-elect") && args.includes("--namespaces=apps"), args.join(" "));
    });

    await t.step("the chart's RBAC is enough to run every controller", async () => {
      // A client certificate for the service account's user name: RBAC sees exactly the chart's grants.
      const kubeconfig = await env.kube.userKubeconfig(`system:serviceaccount:${ns}:dbtether`, [
        "system:serviceaccounts",
      ]);
      await using program = await startProgram([
        "run",
        "--kubeconfig",
        kubeconfig,
        "--leader-elect",
        "--leader-election-namespace",
        ns,
        "--metrics-bind-address",
        "0",
        "--health-probe-bind-address",
        "0",
        "--backoff-max",
        "5s",
      ]);
      const app = await env.namespace("apps");
      await env.kube.apply(env.clusterManifest("rbac-pg"));
      await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: rbac-db, namespace: ${app} }
spec: { clusterRef: { name: rbac-pg }, deletionPolicy: Delete }
---
apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: rbac-user, namespace: ${app} }
spec: { databaseRef: { name: rbac-db }, privileges: readwrite }
`);
      await env.waitPhase("dbcluster", "rbac-pg", "Connected");
      await env.waitPhase("database", "rbac-db", "Ready", { namespace: app });
      await env.waitPhase("databaseuser", "rbac-user", "Ready", { namespace: app });
      assert(
        !/forbidden/i.test(program.logs()),
        program.logs().split("\n").filter((l) => /forbidden/i.test(l)).slice(0, 3).join("\n"),
      );
      const events = (await env.kube.kubectl(["get", "events", "-n", app], { check: true })).stdout;
      assert(events.length > 0, "events were written with the chart's permissions");
    });
  },
);
