/**
 * `helm install` as the seed README writes it creates everything, and the chart's RBAC is
 * enough and not more: the program, authenticated with a token the apiserver issued for the
 * chart's ServiceAccount (RBAC sees exactly the chart's grants), brings examples/ to Ready and
 * Completed with leader election on; without one rule of the ClusterRole a DatabaseUser cannot
 * be served, and with it back it can. `helm uninstall` keeps the CRDs and the objects.
 *
 * The apiserver runs OwnerReferencesPermissionEnforcement (as OpenShift and hardened clusters
 * do), the admission plugin that makes the `databaseusers/finalizers` rule necessary.
 */
import { helm } from "../scripts/helm.ts";
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { type Obj, readyOf, waitReason } from "./helpers/fixtures.ts";
import { applyExamples, serviceAccountKubeconfig, waitExamplesReady } from "./helpers/install.ts";
import { pgToolArgs, startProgram } from "./helpers/program.ts";
import { runArgs } from "./helpers/env.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS = "postgres-operator-system";
const CRDS = [
  "backups.dbtether.io",
  "backupschedules.dbtether.io",
  "backupstorages.dbtether.io",
  "databases.dbtether.io",
  "databaseusers.dbtether.io",
  "dbclusters.dbtether.io",
  "postgresdatabases.experimental.bujarmurati.com",
  "restores.dbtether.io",
];

// deno-lint-ignore no-explicit-any
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; [k: string]: any };

Deno.test(
  { name: "helm install creates everything and the chart's RBAC is exactly enough", ...opts },
  async (t) => {
    await using env = await startEnv({
      pg: true,
      kube: {
        crds: false,
        apiserverArgs: ["--enable-admission-plugins=OwnerReferencesPermissionEnforcement"],
      },
    });
    const kubeEnv = { KUBECONFIG: env.kube.kubeconfigPath };

    await t.step("the seed README's helm install command creates every object", async () => {
      const r = await helm(
        ["install", "dbtether", "./charts/dbtether", "-n", NS, "--create-namespace"],
        { env: kubeEnv },
      );
      assertEquals(r.code, 0, r.stderr);
      assertMatch(r.stdout, /STATUS: deployed/);
      assertMatch(r.stdout, /helm uninstall` keeps them/);
      await env.kube.kubectl(
        ["wait", "--for=condition=Established", "--timeout=60s", ...CRDS.map((c) => `crd/${c}`)],
        { check: true },
      );
      const get = async (what: string[]) =>
        (await env.kube.kubectl(["get", ...what, "-o", "name"])).stdout;
      assertEquals(
        (await get([
          "-n",
          NS,
          "serviceaccount/dbtether",
          "deployment/dbtether",
          "service/dbtether-metrics",
          "role/dbtether-leader-election",
          "rolebinding/dbtether-leader-election",
        ])).trim().split("\n").length,
        5,
      );
      assertEquals(
        (await get(["clusterrole/dbtether", "clusterrolebinding/dbtether"])).trim().split("\n")
          .length,
        2,
      );
    });

    await t.step("the ServiceAccount can do exactly the golden list, no more", async () => {
      // What RBAC grants, as the apiserver evaluates it: a tenant namespace and the release
      // namespace (leases). A widening of the chart's RBAC fails here; so does a narrowing that
      // nobody meant. DBTETHER_UPDATE_GOLDEN=1 rewrites the file after a deliberate change.
      const sa = `--as=system:serviceaccount:${NS}:dbtether`;
      const lines: string[] = [];
      for (const ns of ["default", NS]) {
        const r = await env.kube.kubectl(["auth", "can-i", "--list", "-n", ns, sa], {
          check: true,
        });
        for (const row of r.stdout.trim().split("\n").slice(1)) {
          lines.push(`${ns === NS ? "release" : "tenant"}: ${row.trim().split(/\s+/).join(" ")}`);
        }
      }
      const got = lines.sort().join("\n") + "\n";
      const golden = new URL("./golden/chart_rbac.txt", import.meta.url);
      if (Deno.env.get("DBTETHER_UPDATE_GOLDEN") === "1") await Deno.writeTextFile(golden, got);
      assertEquals(got, await Deno.readTextFile(golden));
      for (const wide of ["*", "escalate", "bind", "impersonate", "deletecollection"]) {
        assert(!lines.some((l) => l.split(" ").includes(wide) || l.includes(`[${wide}`)), wide);
      }
    });

    const kubeconfig = await serviceAccountKubeconfig(env, { namespace: NS, name: "dbtether" });
    const backupDir = await Deno.makeTempDir({ prefix: "dbtether-chart-backups-" });
    const program = (extra: string[] = []) =>
      startProgram([
        ...runArgs(kubeconfig),
        // The client tools of the test server's major (the image carries every major's).
        ...pgToolArgs(),
        "--leader-elect",
        "--leader-election-namespace",
        NS,
        "--postgresdatabase-cluster",
        "my-aurora-cluster",
        "--backoff-base",
        "200ms",
        "--backoff-max",
        "2s",
        ...extra,
      ]);

    await t.step(
      "as the chart's ServiceAccount, the program brings examples/ to Ready",
      async () => {
        await using running = await program();
        await applyExamples(env, { backupDir });
        await waitExamplesReady(env);
        const forbidden = running.logs().split("\n").filter((l) => /forbidden/i.test(l));
        assertEquals(forbidden.slice(0, 3), []);
        const lease = await env.getJson<{ spec: { holderIdentity?: string } }>(
          "lease",
          "dbtether-leader",
          NS,
        );
        assert(lease?.spec.holderIdentity, "the program holds the lease in the release namespace");
        const events = (await env.kube.kubectl(["get", "events", "-n", "default", "-o", "name"], {
          check: true,
        })).stdout;
        assert(events.trim().length > 0, "events were written with the chart's permissions");
        await running.stop();
      },
    );

    await t.step(
      "without the databaseusers/finalizers rule, a DatabaseUser's Secret is refused",
      async () => {
        const role = (await env.getJson<{ rules: Rule[] }>("clusterrole", "dbtether"))!;
        const without = role.rules.filter((r) => !r.resources.includes("databaseusers/finalizers"));
        assertEquals(without.length, role.rules.length - 1);
        const setRules = (rules: Rule[]) =>
          env.kube.kubectl([
            "patch",
            "clusterrole",
            "dbtether",
            "--type",
            "merge",
            "-p",
            JSON.stringify({ rules }),
          ], { check: true });
        await setRules(without);
        await using running = await program();
        await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: rbac-probe, namespace: default }
spec: { databaseRef: { name: my-app-db } }
`);
        const user = await waitReason<Obj>(env, {
          kind: "databaseuser",
          namespace: "default",
          name: "rbac-probe",
          reason: "ReconcileFailed",
        });
        assertMatch(readyOf(user)!.message, /blockOwnerDeletion|finalizers/);
        assertEquals(await env.getJson("secret", "rbac-probe-credentials", "default"), undefined);

        await setRules(role.rules);
        await env.waitPhase("databaseuser", "rbac-probe", "Ready", { namespace: "default" });
        assert(await env.getJson("secret", "rbac-probe-credentials", "default"));
        await running.stop();
      },
    );

    await t.step(
      "helm uninstall removes the release and keeps the CRDs and the objects",
      async () => {
        const r = await helm(["uninstall", "dbtether", "-n", NS], { env: kubeEnv });
        assertEquals(r.code, 0, r.stderr);
        const gone = await env.kube.kubectl([
          "get",
          "deployment/dbtether",
          "clusterrole/dbtether",
          "-n",
          NS,
        ]);
        assert(gone.code !== 0 && /NotFound/.test(gone.stderr), gone.stdout + gone.stderr);
        await env.kube.kubectl(["get", ...CRDS.map((c) => `crd/${c}`)], { check: true });
        await env.waitPhase("database", "my-app-db", "Ready", { namespace: "default" });
      },
    );
    await Deno.remove(backupDir, { recursive: true }).catch(() => {});
  },
);
