/**
 * The Helm chart: it lints; values.schema.json refuses what the program would refuse; it
 * renders for the default values and several others into objects a real apiserver accepts (a
 * server-side dry run), with flags `dbtether run` parses and a pod the Pod Security
 * "restricted" profile admits; it ships the generated CRDs unchanged.
 * chart_install_test.ts installs it and runs the program with its RBAC.
 */
import { parseAllDocuments } from "yaml";
import { parseRunConfig } from "../config.ts";
import { helm } from "../scripts/helm.ts";
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";

const root = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };
const NS = "dbtether-system";

// deno-lint-ignore no-explicit-any
type Doc = any;

async function render(set: string[] = []): Promise<{ text: string; docs: Doc[] }> {
  const args = ["template", "dbtether", "chart", "-n", NS, ...set.flatMap((s) => ["--set", s])];
  const { stdout } = await helm(args, { check: true });
  return { text: stdout, docs: parseAllDocuments(stdout).map((d) => d.toJS()).filter(Boolean) };
}

const find = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind);
const one = (docs: Doc[], kind: string) => {
  const all = find(docs, kind);
  assertEquals(all.length, 1, `one ${kind}`);
  return all[0];
};
const container = (docs: Doc[]) => one(docs, "Deployment").spec.template.spec.containers[0];
const args = (docs: Doc[]): string[] => container(docs).args;

/** Every flag the chart passes is one `dbtether run` accepts (config.ts, the real parser). */
function assertProgramAccepts(docs: Doc[]): void {
  const a = args(docs);
  assertEquals(a[0], "run");
  parseRunConfig({ args: a.slice(1), env: {}, hostname: "chart-test" });
}

/** The dotted paths of every leaf of a values object. */
function leafPaths(v: unknown, prefix = ""): string[] {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return [prefix];
  const entries = Object.entries(v as Record<string, unknown>);
  if (!entries.length) return [prefix];
  return entries.flatMap(([k, x]) => leafPaths(x, prefix ? `${prefix}.${k}` : k));
}

/** Whether the schema declares `path` (through nested `properties`, or a typed map). */
function schemaHas(schema: Doc, path: string): boolean {
  let s = schema;
  for (const part of path.split(".")) {
    if (typeof s?.additionalProperties === "object") return true;
    s = s?.properties?.[part];
    if (!s) return false;
  }
  return true;
}

/**
 * prometheus-operator's own ServiceMonitor CRD (its real schema), which
 * scripts/install-prometheus-crds.sh takes from the pinned Go module and checks by sha256.
 */
async function serviceMonitorCrd(): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: [`${root}scripts/install-prometheus-crds.sh`],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) {
    throw new Error("Cannot fetch the CRD: scripts/install-prometheus-crds.sh failed");
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** The value sets rendered and dry-run applied, each with what it must change. */
const CASES: { name: string; set: string[]; check: (docs: Doc[]) => void }[] = [
  {
    name: "defaults: two replicas with leader election, restricted pod, probes",
    set: [],
    check(docs) {
      const dep = one(docs, "Deployment");
      assertEquals(dep.spec.replicas, 2);
      const a = args(docs);
      for (const f of ["--leader-elect", `--leader-election-namespace=${NS}`]) {
        assert(a.includes(f), a.join(" "));
      }
      const c = container(docs);
      assertEquals(c.startupProbe.httpGet.path, "/healthz");
      assertEquals(c.livenessProbe.httpGet.path, "/healthz");
      assertEquals(c.readinessProbe.httpGet.path, "/readyz");
      assertEquals(c.securityContext.readOnlyRootFilesystem, true);
      assertEquals(c.securityContext.capabilities.drop, ["ALL"]);
      assertEquals(one(docs, "Role").metadata.namespace, NS);
      assertEquals(
        find(docs, "ServiceMonitor").length + find(docs, "PodDisruptionBudget").length,
        0,
      );
      assertEquals(one(docs, "ServiceAccount").metadata.annotations, undefined);
      assertEquals(one(docs, "Service").spec.ports[0].port, 8080);
    },
  },
  {
    name: "one replica without leader election: no --leader-elect, no lease Role",
    set: ["replicaCount=1", "leaderElection.enabled=false"],
    check(docs) {
      assert(!args(docs).includes("--leader-elect"));
      assertEquals(find(docs, "Role").length, 0);
    },
  },
  {
    name: "more than one replica turns leader election on regardless",
    set: ["replicaCount=3", "leaderElection.enabled=false"],
    check(docs) {
      assert(args(docs).includes("--leader-elect"));
      assertEquals(find(docs, "Role").length, 1);
    },
  },
  {
    name: "workload identity for AWS, GCP and Azure",
    set: [
      "cloudIdentity.aws.roleArn=arn:aws:iam::123456789012:role/dbtether",
      "cloudIdentity.gcp.serviceAccount=dbtether@proj.iam.gserviceaccount.com",
      "cloudIdentity.azure.clientId=00000000-0000-0000-0000-000000000001",
      "cloudIdentity.azure.tenantId=00000000-0000-0000-0000-000000000002",
      "serviceAccount.annotations.team=data",
    ],
    check(docs) {
      assertEquals(one(docs, "ServiceAccount").metadata.annotations, {
        "azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000001",
        "azure.workload.identity/tenant-id": "00000000-0000-0000-0000-000000000002",
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/dbtether",
        "iam.gke.io/gcp-service-account": "dbtether@proj.iam.gserviceaccount.com",
        team: "data",
      });
      const labels = one(docs, "Deployment").spec.template.metadata.labels;
      assertEquals(labels["azure.workload.identity/use"], "true");
    },
  },
  {
    name: "flags from values, ServiceMonitor, PodDisruptionBudget, pinned image",
    set: [
      "watchNamespaces={team-a,team-b}",
      "logLevel=debug",
      "logFormat=text",
      "workers=4",
      "backups.maxConcurrent=5",
      "backups.maxConcurrentPerCluster=1",
      "backups.shutdownGrace=20s",
      "backups.signingSecret=vault/backup-keys",
      "postgresDatabase.cluster=legacy-pg",
      "postgresDatabase.rotationIntervalSeconds=86400",
      "extraArgs={--backup-gzip-workers=4}",
      "env[0].name=PGSSLMODE,env[0].value=require",
      "extraVolumes[0].name=storage-ca,extraVolumes[0].configMap.name=storage-ca",
      "extraVolumeMounts[0].name=storage-ca,extraVolumeMounts[0].mountPath=/etc/dbtether/ca",
      "extraVolumeMounts[0].readOnly=true",
      "metrics.serviceMonitor.enabled=true",
      "metrics.serviceMonitor.labels.release=prom",
      "podDisruptionBudget.enabled=true",
      `image.digest=sha256:${"a".repeat(64)}`,
    ],
    check(docs) {
      const a = args(docs);
      for (
        const f of [
          "--namespaces=team-a,team-b",
          "--log-level=debug",
          "--log-format=text",
          "--workers=4",
          "--max-concurrent-backups=5",
          "--max-concurrent-backups-per-cluster=1",
          "--backup-shutdown-grace=20s",
          "--backup-signing-secret=vault/backup-keys",
          "--postgresdatabase-cluster=legacy-pg",
          "--backup-gzip-workers=4",
        ]
      ) assert(a.includes(f), `${f} in ${a.join(" ")}`);
      const env = Object.fromEntries(
        container(docs).env.map((e: { name: string; value: string }) => [e.name, e.value]),
      );
      assertEquals(env.PG_DB_OPERATOR_PASSWORD_ROTATION_INTERVAL_SECONDS, "86400");
      assertEquals(env.PGSSLMODE, "require");
      // Extra volumes come after the chart's own in-memory /tmp, which stays.
      assertEquals(one(docs, "Deployment").spec.template.spec.volumes, [
        { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "4Mi" } },
        { name: "storage-ca", configMap: { name: "storage-ca" } },
      ]);
      assertEquals(container(docs).volumeMounts, [
        { name: "tmp", mountPath: "/tmp" },
        { name: "storage-ca", mountPath: "/etc/dbtether/ca", readOnly: true },
      ]);
      assertEquals(container(docs).image, `ghcr.io/dbtether/dbtether@sha256:${"a".repeat(64)}`);
      assertEquals(one(docs, "ServiceMonitor").metadata.labels.release, "prom");
      assertEquals(one(docs, "PodDisruptionBudget").spec.minAvailable, 1);
    },
  },
  {
    name: "an existing ServiceAccount, no PostgresDatabase controller, no metrics Service",
    set: [
      "serviceAccount.create=false",
      "serviceAccount.name=platform-sa",
      "postgresDatabase.enabled=false",
      "metrics.service.enabled=false",
    ],
    check(docs) {
      assertEquals(find(docs, "ServiceAccount").length, 0);
      assertEquals(find(docs, "Service").length, 0);
      assertEquals(one(docs, "Deployment").spec.template.spec.serviceAccountName, "platform-sa");
      assertEquals(one(docs, "ClusterRoleBinding").subjects[0].name, "platform-sa");
      assert(args(docs).includes("--disable-postgresdatabase"));
    },
  },
];

Deno.test({ name: "the Helm chart lints and its values are validated", ...opts }, async (t) => {
  await t.step("helm lint --strict", async () => {
    const r = await helm(["lint", "--strict", "chart"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
  });

  await t.step("values.schema.json declares every value of values.yaml", async () => {
    const schema = JSON.parse(await Deno.readTextFile(`${root}chart/values.schema.json`));
    const values = parseAllDocuments(await Deno.readTextFile(`${root}chart/values.yaml`))[0]!
      .toJS();
    const missing = leafPaths(values).filter((p) => !schemaHas(schema, p));
    assertEquals(missing, []);
  });

  await t.step("values the program would refuse fail at helm template", async () => {
    const bad = [
      ["replicsCount=2", "additional properties"],
      ["replicaCount=0", "replicaCount"],
      ["logLevel=verbose", "logLevel"],
      ["gracefulShutdownTimeout=60", "gracefulShutdownTimeout"],
      ["watchNamespaces={Team_A}", "watchNamespaces"],
      ["cloudIdentity.aws.roleArn=my-role", "roleArn"],
      ["backups.gzipWorkers=17", "gzipWorkers"],
      ["extraVolumeMounts[0].name=ca", "mountPath"],
    ];
    for (const [set, word] of bad) {
      const r = await helm(["template", "x", "chart", "--set", set!]);
      assert(r.code !== 0, `--set ${set} was accepted`);
      assertMatch(r.stderr, new RegExp(word!, "i"), `--set ${set}: ${r.stderr}`);
    }
  });

  await t.step("chart/crds are the generated CRDs, byte for byte", async () => {
    const names: string[] = [];
    for await (const e of Deno.readDir(`${root}chart/crds`)) {
      names.push(e.name);
      assertEquals(
        await Deno.readTextFile(`${root}chart/crds/${e.name}`),
        await Deno.readTextFile(`${root}crds/generated/${e.name}`),
        e.name,
      );
    }
    assertEquals(names.length, 8);
  });
});

Deno.test(
  { name: "the chart renders, for several values, what a real apiserver accepts", ...opts },
  async (t) => {
    await using env = await startEnv({ kube: { crds: false } });
    await env.kube.apply(`apiVersion: v1
kind: Namespace
metadata:
  name: ${NS}
  labels: { pod-security.kubernetes.io/enforce: restricted }
`);
    // Server-side: the CRD is too large for the last-applied annotation of a client-side apply.
    await env.kube.kubectl(["apply", "--server-side", "-f", await serviceMonitorCrd()], {
      check: true,
    });
    await env.kube.kubectl([
      "wait",
      "--for=condition=Established",
      "crd/servicemonitors.monitoring.coreos.com",
    ], { check: true });

    for (const c of CASES) {
      await t.step(c.name, async () => {
        const { text, docs } = await render(c.set);
        c.check(docs);
        assertProgramAccepts(docs);
        const r = await env.kube.kubectl(
          ["apply", "--server-side", "--dry-run=server", "-n", NS, "-f", "-"],
          { stdin: text },
        );
        assertEquals(r.code, 0, r.stderr);
        assert(!/warning/i.test(r.stderr), r.stderr);
        assertEquals(r.stdout.trim().split("\n").length, docs.length, r.stdout);
      });
    }

    await t.step(
      "prometheus-operator's schema refuses a ServiceMonitor it would not scrape",
      async () => {
        const { docs } = await render(["metrics.serviceMonitor.enabled=true"]);
        const sm = one(docs, "ServiceMonitor");
        const crd = (await env.getJson<Doc>("crd", "servicemonitors.monitoring.coreos.com"))!;
        assertEquals(crd.metadata.annotations["operator.prometheus.io/version"], "0.85.0");
        const bad = structuredClone(sm);
        bad.spec.endpoints[0].interval = "every minute";
        bad.spec.endpoints[0].scheme = "gopher";
        const r = await env.kube.kubectl(
          ["apply", "--server-side", "--dry-run=server", "-f", "-"],
          {
            stdin: JSON.stringify(bad),
          },
        );
        assert(r.code !== 0, "a ServiceMonitor with a bad interval and scheme was accepted");
        assertMatch(r.stderr, /spec\.endpoints\[0\]\.interval/);
        assertMatch(r.stderr, /spec\.endpoints\[0\]\.scheme/);
      },
    );

    await t.step(
      'the pod passes Pod Security "restricted"; without its securityContext it does not',
      async () => {
        const { docs } = await render();
        const spec = one(docs, "Deployment").spec.template.spec;
        const pod = (s: Doc) =>
          JSON.stringify({
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: "restricted-check", namespace: NS },
            spec: s,
          });
        const ok = await env.kube.kubectl(["create", "--dry-run=server", "-f", "-"], {
          stdin: pod(spec),
        });
        assertEquals(ok.code, 0, ok.stderr);
        const loose = structuredClone(spec);
        delete loose.securityContext;
        delete loose.containers[0].securityContext;
        const refused = await env.kube.kubectl(["create", "--dry-run=server", "-f", "-"], {
          stdin: pod(loose),
        });
        assert(refused.code !== 0, "a pod without securityContext was admitted");
        assertMatch(refused.stderr, /violates PodSecurity "restricted/);
      },
    );
  },
);
