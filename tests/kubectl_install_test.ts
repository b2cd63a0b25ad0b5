/**
 * The kubectl install path and the VM recipe. config/ and deploy/install.yaml are what
 * `make manifests` renders from the chart and the CRDs; the seed README's three directories,
 * applied server-side in its order to an apiserver without our CRDs, create everything, and
 * deploy/install.yaml agrees with them. Then the program runs exactly as deploy/vm/
 * dbtether.service starts it on a VM (its flags verbatim; only the binary is `deno run` with the
 * binary's permissions, the kubeconfig holds a token of the ServiceAccount config/rbac/ made,
 * and the ports are free ones on the unit's 127.0.0.1), leads through the chart's Lease and
 * brings the README's objects to Ready.
 */
import { manifestDrift } from "../scripts/manifests.ts";
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { freePort } from "./helpers/free_port.ts";
import { serviceAccountKubeconfig } from "./helpers/install.ts";
import { waitCrdsEstablished } from "./helpers/kube.ts";
import { startProgram } from "./helpers/program.ts";
import { pointReadmeAtServer } from "./helpers/seed.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const root = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };
const NS = "postgres-operator-system";
const UNIT = `${root}deploy/vm/dbtether.service`;

/** The ExecStart command line of the unit, split into words. */
function execStart(unit: string): string[] {
  const line = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unit)?.[1];
  if (!line) throw new Error("deploy/vm/dbtether.service has no ExecStart");
  return line.replace(/\\\n/g, " ").trim().split(/\s+/);
}

Deno.test({ name: "config/ and deploy/install.yaml are up to date", ...opts }, async () => {
  assertEquals(await manifestDrift(), [], "run make manifests");
});

Deno.test(
  { name: "the seed's kubectl install path installs, and the VM recipe runs", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: true, kube: { crds: false } });
    const apply = (path: string) =>
      env.kube.kubectl(["apply", "--server-side", "-f", `${root}${path}`]);

    await t.step(
      "config/crd/bases/, config/rbac/, config/manager/ apply in that order",
      async () => {
        const crds = await apply("config/crd/bases/");
        assertEquals(crds.code, 0, crds.stderr);
        await waitCrdsEstablished(env.kube.kubectl);
        const rbac = await apply("config/rbac/");
        assertEquals(rbac.code, 0, rbac.stderr);
        const manager = await apply("config/manager/");
        assertEquals(manager.code, 0, manager.stderr);
        const names = (await env.kube.kubectl([
          "get",
          "-n",
          NS,
          "serviceaccount/dbtether",
          "role/dbtether-leader-election",
          "rolebinding/dbtether-leader-election",
          "deployment/dbtether",
          "service/dbtether-metrics",
          "clusterrole/dbtether",
          "clusterrolebinding/dbtether",
          "-o",
          "name",
        ], { check: true })).stdout.trim().split("\n");
        assertEquals(names.length, 7);
        const crdCount = (await env.kube.kubectl(["get", "crd", "-o", "name"], { check: true }))
          .stdout.trim().split("\n").length;
        assertEquals(crdCount, 8);
      },
    );

    await t.step(
      "the namespace enforces Pod Security restricted and the pod passes it",
      async () => {
        const nsObj = await env.getJson<{ metadata: { labels: Record<string, string> } }>(
          "namespace",
          NS,
        );
        assertEquals(nsObj?.metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
        const dep = await env.getJson<{ spec: { template: { spec: unknown } } }>(
          "deployment",
          "dbtether",
          NS,
        );
        const pod = JSON.stringify({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "restricted-check", namespace: NS },
          spec: dep!.spec.template.spec,
        });
        const r = await env.kube.kubectl(["create", "--dry-run=server", "-f", "-"], { stdin: pod });
        assertEquals(r.code, 0, r.stderr);
      },
    );

    await t.step("deploy/install.yaml holds the same objects", async () => {
      const r = await apply("deploy/install.yaml");
      assertEquals(r.code, 0, r.stderr);
      // Server-side apply by the same manager: every object is already there, unchanged.
      const lines = r.stdout.trim().split("\n");
      assertEquals(lines.length, 1 + 8 + 7, r.stdout);
      assert(lines.every((l) => / serverside-applied$/.test(l)), r.stdout);
    });

    await t.step("the systemd unit is valid (systemd-analyze verify)", async () => {
      const dir = await Deno.makeTempDir({ prefix: "dbtether-unit-" });
      // verify insists that the binary exists; everything else is checked as written.
      const text = (await Deno.readTextFile(UNIT)).replaceAll(
        "/usr/local/bin/dbtether",
        "/bin/true",
      );
      await Deno.writeTextFile(`${dir}/dbtether.service`, text);
      const out = await new Deno.Command("systemd-analyze", {
        args: ["verify", `${dir}/dbtether.service`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert(out.success && stderr.trim() === "", stderr);
      await Deno.remove(dir, { recursive: true });
    });

    await t.step(
      "the unit's command line runs against the cluster with leader election",
      async () => {
        const words = execStart(await Deno.readTextFile(UNIT));
        assertEquals(words.slice(0, 2), ["/usr/local/bin/dbtether", "run"]);
        const kubeconfig = await serviceAccountKubeconfig(env, { namespace: NS, name: "dbtether" });
        const metrics = `127.0.0.1:${freePort()}`, health = `127.0.0.1:${freePort()}`;
        const flags = words.slice(1).map((w, i, all) => {
          const flag = all[i - 1];
          if (flag === "--kubeconfig") return kubeconfig;
          if (flag === "--metrics-bind-address") return metrics;
          if (flag === "--health-probe-bind-address") return health;
          return w;
        });
        for (const f of ["--leader-elect", "--leader-election-namespace", NS]) {
          assert(flags.includes(f), `the unit passes ${f}`);
        }
        await using program = await startProgram(flags, {
          // What the unit's EnvironmentFile may add; nothing else reaches the program.
          env: { HOME: "/nonexistent" },
        });
        for (const file of ["database.yaml", "database_user.yaml"]) {
          await env.kube.apply(await Deno.readTextFile(`${root}examples/${file}`));
        }
        await pointReadmeAtServer(env);
        await env.waitPhase("dbcluster", "my-aurora-cluster", "Connected");
        await env.waitPhase("database", "my-app-db", "Ready", { namespace: "default" });
        await env.waitPhase("databaseuser", "my-app-readonly", "Ready", { namespace: "default" });
        const lease = await env.getJson<{ spec: { holderIdentity?: string } }>(
          "lease",
          "dbtether-leader",
          NS,
        );
        assert(lease?.spec.holderIdentity, "the VM holds the chart's Lease");
        await waitFor("the VM's /readyz", async () => {
          const r = await fetch(`http://${health}/readyz`).catch(() => undefined);
          await r?.body?.cancel();
          return r?.ok;
        }, { timeoutMs: budget("react") });
        const m = await fetch(`http://${metrics}/metrics`);
        assertMatch(await m.text(), /^dbtether_leader 1$/m);
        assertEquals(await program.stop("SIGTERM"), 0, program.logs().slice(-2000));
        // A clean stop releases the Lease so that an in-cluster replica takes over at once.
        const released = await env.getJson<{ spec: { holderIdentity?: string } }>(
          "lease",
          "dbtether-leader",
          NS,
        );
        assert(!released?.spec.holderIdentity, JSON.stringify(released?.spec));
      },
    );
  },
);
