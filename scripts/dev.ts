/**
 * The local environment for `make demo`, `make dev-up` and `make dev-down`: a real
 * kube-apiserver + etcd (CRDs installed), PostgreSQL 15 with a non-superuser admin (like RDS),
 * and MinIO, all on loopback. The same helpers start them as in the tests.
 *
 *   deno run -A scripts/dev.ts demo   everything + the controller + examples/, until Ctrl-C
 *   deno run -A scripts/dev.ts up     the environment in the background; writes .dev/env
 *   deno run -A scripts/dev.ts down   stops what `up` started
 */
import { parseAllDocuments, stringify } from "yaml";
import { startKube } from "../tests/helpers/kube.ts";
import { startPostgres } from "../tests/helpers/postgres.ts";
import { MINIO_PASSWORD, MINIO_USER, startMinio } from "../tests/helpers/storage_servers.ts";
import { startProgram } from "../tests/helpers/program.ts";

const root = new URL("../", import.meta.url).pathname;
const devDir = `${root}.dev`;
const say = (s: string) => console.log(s);

/** The DBCluster and Secret names the README's manifests use; the demo points them here. */
const CLUSTER = "my-aurora-cluster";
const CLUSTER_SECRET = { name: "aurora-admin-credentials", namespace: "postgres-operator-system" };

interface Env extends AsyncDisposable {
  kubectl: (
    args: string[],
    stdin?: string,
  ) => Promise<{ code: number; stdout: string; stderr: string }>;
  kubeconfig: string;
  envLines: string[];
  pg: { host: string; port: number; user: string; password: string };
  s3: { endpoint: string; bucket: string };
}

async function startEnvironment(): Promise<Env> {
  // The directory of the examples' `local` BackupStorage (dbtether never creates it: a
  // missing directory usually means a volume that is not mounted).
  await Deno.mkdir(`${devDir}/backups`, { recursive: true });
  say("Starting etcd and kube-apiserver (built from their Go modules) ...");
  const kube = await startKube({ crds: true });
  say("Starting PostgreSQL with a non-superuser admin role ...");
  const pg = await startPostgres();
  say("Starting MinIO (S3) ...");
  const minio = await startMinio();
  await minio.createBucket("dbtether-backups");
  const kubectl = (args: string[], stdin?: string) =>
    kube.kubectl(args, stdin !== undefined ? { stdin } : {});
  const kubeconfig = `${devDir}/kubeconfig`;
  await Deno.copyFile(kube.kubeconfigPath, kubeconfig);
  await Deno.chmod(kubeconfig, 0o600);
  const envLines = [
    `export KUBECONFIG=${kubeconfig}`,
    `export PATH=${kube.binDir}:${pg.binDir}:$PATH`,
    `export PGHOST=${pg.host}`,
    `export PGPORT=${pg.port}`,
    `export PGUSER=${pg.admin.user}`,
    `export PGPASSWORD='${pg.admin.password}'`,
    `export PGDATABASE=postgres`,
    `export AWS_ACCESS_KEY_ID=${MINIO_USER}`,
    `export AWS_SECRET_ACCESS_KEY=${MINIO_PASSWORD}`,
    `export DBTETHER_DEV_S3_ENDPOINT=${minio.endpoint}`,
  ];
  await Deno.writeTextFile(`${devDir}/env`, envLines.join("\n") + "\n", { mode: 0o600 });
  await kubectl(["create", "namespace", CLUSTER_SECRET.namespace]);
  // The admin Secret and DBCluster of the README, pointed at the local server.
  await kubectl(
    ["apply", "-f", "-"],
    stringify({
      apiVersion: "v1",
      kind: "Secret",
      metadata: CLUSTER_SECRET,
      type: "Opaque",
      stringData: { username: pg.admin.user, password: pg.admin.password },
    }),
  );
  await kubectl(
    ["apply", "-f", "-"],
    stringify({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "minio-credentials", namespace: CLUSTER_SECRET.namespace },
      type: "Opaque",
      stringData: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD },
    }),
  );
  return {
    kubectl,
    kubeconfig,
    envLines,
    pg: { host: pg.host, port: pg.port, user: pg.admin.user, password: pg.admin.password },
    s3: { endpoint: minio.endpoint, bucket: "dbtether-backups" },
    async [Symbol.asyncDispose]() {
      await Promise.resolve(minio[Symbol.asyncDispose]()).catch(() => {});
      await Promise.resolve(pg[Symbol.asyncDispose]()).catch(() => {});
      await kube.stop().catch(() => {});
      await Deno.remove(`${devDir}/env`).catch(() => {});
      await Deno.remove(kubeconfig).catch(() => {});
    },
  };
}

/** examples/*.yaml with the README's placeholders replaced by the local servers. */
async function exampleManifests(env: Env): Promise<{ file: string; yaml: string }[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(`${root}examples`)) {
    if (e.isFile && /\.ya?ml$/.test(e.name)) files.push(e.name);
  }
  files.sort();
  const out: { file: string; yaml: string }[] = [];
  for (const file of files) {
    const docs = parseAllDocuments(await Deno.readTextFile(`${root}examples/${file}`));
    const objs = docs.map((d) => d.toJS()).filter((o) => o && typeof o === "object");
    const kept = objs.filter((o) =>
      !(o.kind === "Secret" && o.metadata?.name === CLUSTER_SECRET.name)
    );
    for (const o of kept) {
      if (o.kind === "DBCluster") {
        o.spec.endpoint = env.pg.host;
        o.spec.port = env.pg.port;
        o.spec.sslMode = "disable";
        o.spec.credentialsSecretRef = CLUSTER_SECRET;
        delete o.spec.credentialsFromEnv;
      }
      if (o.kind === "BackupStorage" && o.spec?.s3) {
        o.spec.s3 = {
          ...o.spec.s3,
          bucket: env.s3.bucket,
          endpoint: env.s3.endpoint,
          forcePathStyle: true,
          region: "us-east-1",
        };
        o.spec.credentialsSecretRef = {
          name: "minio-credentials",
          namespace: CLUSTER_SECRET.namespace,
        };
      }
      if (o.kind === "BackupStorage" && o.spec?.local) o.spec.local.path = `${devDir}/backups`;
    }
    if (kept.length) out.push({ file, yaml: kept.map((o) => stringify(o)).join("---\n") });
  }
  return out;
}

async function ensureNamespaces(env: Env, yaml: string): Promise<void> {
  for (const m of yaml.matchAll(/^\s+namespace: ([a-z0-9-]+)$/gm)) {
    await env.kubectl(["create", "namespace", m[1]!]).catch(() => {});
  }
}

async function demo(): Promise<void> {
  await using env = await startEnvironment();
  say("Starting dbtether (deno run with the binary's permission flags) ...");
  await using program = await startProgram([
    "run",
    "--kubeconfig",
    env.kubeconfig,
    "--log-format",
    "text",
    "--metrics-bind-address",
    "127.0.0.1:8080",
    "--health-probe-bind-address",
    "127.0.0.1:8081",
    // pg-db-operator's PostgresDatabase uses the demo's server too.
    "--postgresdatabase-cluster",
    CLUSTER,
  ], { env: {} });
  for (const { file, yaml } of await exampleManifests(env)) {
    await ensureNamespaces(env, yaml);
    const r = await env.kubectl(["apply", "-f", "-"], yaml);
    say(`\n$ kubectl apply -f examples/${file}\n${(r.stdout + r.stderr).trim()}`);
  }
  const kinds =
    "dbclusters,databases,databaseusers,postgresdatabases,backupstorages,backups,restores";
  const deadline = Date.now() + 90_000;
  let table = "";
  while (Date.now() < deadline) {
    table = (await env.kubectl(["get", kinds, "-A"])).stdout;
    if (!/Pending|Running|Waiting/.test(table) && /Ready|Connected/.test(table)) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  say(`\n$ kubectl get ${kinds} -A\n${table}`);
  await showLogin(env);
  say(`
dbtether is running; its log is below. Metrics: http://127.0.0.1:8080/metrics
In another terminal:  source .dev/env && kubectl get databases -A
Press Ctrl-C to stop everything.
`);
  say(program.logs());
  let shown = program.logs().length;
  const stop = new Promise<void>((resolve) => {
    Deno.addSignalListener("SIGINT", () => resolve());
    Deno.addSignalListener("SIGTERM", () => resolve());
  });
  const tail = setInterval(() => {
    const logs = program.logs();
    if (logs.length > shown) Deno.stdout.writeSync(new TextEncoder().encode(logs.slice(shown)));
    shown = logs.length;
  }, 500);
  // In CI or when stdin is not a terminal, show the result and stop instead of waiting.
  if (Deno.env.get("DBTETHER_DEMO_EXIT") === "1") await new Promise((r) => setTimeout(r, 2000));
  else await stop;
  clearInterval(tail);
  say("\nStopping ...");
  await program.stop("SIGTERM");
}

/** Logs in with the first generated credentials Secret, as an application would. */
async function showLogin(env: Env): Promise<void> {
  const r = await env.kubectl([
    "get",
    "secrets",
    "-A",
    "-l",
    "app.kubernetes.io/managed-by=dbtether",
    "-o",
    "json",
  ]);
  if (r.code !== 0) return;
  const items = JSON.parse(r.stdout).items as {
    metadata: { name: string; namespace: string };
    data: Record<string, string>;
  }[];
  const s = items.find((i) =>
    i.data?.password && (i.data.username || i.data.user) && i.data.database
  );
  if (!s) return;
  const d = (k: string) =>
    new TextDecoder().decode(Uint8Array.from(atob(s.data[k] ?? ""), (c) => c.charCodeAt(0)));
  const user = d("username") || d("user");
  const psql = await new Deno.Command("psql", {
    args: [
      "-h",
      env.pg.host,
      "-p",
      String(env.pg.port),
      "-U",
      user,
      "-d",
      d("database"),
      "-Atc",
      "select current_user, current_database()",
    ],
    env: { PGPASSWORD: d("password"), PATH: Deno.env.get("PATH") ?? "" },
    stdout: "piped",
    stderr: "piped",
  }).output().catch(() => undefined);
  if (!psql) return;
  const text = new TextDecoder().decode(psql.success ? psql.stdout : psql.stderr).trim();
  say(
    `\nLogging in with Secret ${s.metadata.namespace}/${s.metadata.name}:\n$ psql -U ${user} -d ${
      d("database")
    } -c 'select current_user, current_database()'\n${text}`,
  );
}

async function serve(): Promise<void> {
  await using env = await startEnvironment();
  await Deno.writeTextFile(`${devDir}/serve.pid`, String(Deno.pid));
  await Deno.writeTextFile(`${devDir}/ready`, new Date().toISOString());
  await new Promise<void>((resolve) => {
    Deno.addSignalListener("SIGTERM", () => resolve());
    Deno.addSignalListener("SIGINT", () => resolve());
  });
  await Deno.remove(`${devDir}/ready`).catch(() => {});
  await Deno.remove(`${devDir}/serve.pid`).catch(() => {});
  void env;
}

async function up(): Promise<void> {
  if (await exists(`${devDir}/serve.pid`)) {
    say("The dev environment is already up: `make dev-down` stops it.");
    return;
  }
  await Deno.mkdir(devDir, { recursive: true });
  await Deno.remove(`${devDir}/ready`).catch(() => {});
  const log = await Deno.open(`${devDir}/dev.log`, { create: true, write: true, truncate: true });
  // setsid: the environment outlives this command and the terminal.
  const child = new Deno.Command("setsid", {
    args: [Deno.execPath(), "run", "-A", `${root}scripts/dev.ts`, "serve"],
    stdin: "null",
    stdout: log.writable ? "piped" : "null",
    stderr: "piped",
  }).spawn();
  child.stdout.pipeTo(log.writable).catch(() => {});
  child.stderr.pipeTo(new WritableStream()).catch(() => {});
  child.unref();
  const deadline = Date.now() + 180_000;
  while (!(await exists(`${devDir}/ready`))) {
    if (Date.now() > deadline) {
      throw new Error("The dev environment did not start: see .dev/dev.log");
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  say(`The dev environment is up: kube-apiserver, PostgreSQL and MinIO on 127.0.0.1.

  source .dev/env                 # KUBECONFIG, PG* of the admin role, PATH with kubectl and psql
  kubectl get dbclusters          # DBCluster ${CLUSTER} needs examples/ or your own manifest
  make run                        # run dbtether against it
  make dev-down                   # stop everything
`);
  Deno.exit(0);
}

async function down(): Promise<void> {
  let pid: number;
  try {
    pid = Number(await Deno.readTextFile(`${devDir}/serve.pid`));
  } catch {
    say("The dev environment is not running.");
    return;
  }
  try {
    Deno.kill(pid, "SIGTERM");
  } catch { /* already gone */ }
  const deadline = Date.now() + 30_000;
  while (await exists(`${devDir}/serve.pid`) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300));
  }
  await Deno.remove(`${devDir}/serve.pid`).catch(() => {});
  say("The dev environment is stopped.");
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

const cmd = Deno.args[0];
if (cmd === "demo") await demo();
else if (cmd === "up") await up();
else if (cmd === "down") await down();
else if (cmd === "serve") await serve();
else {
  console.error("Usage: deno run -A scripts/dev.ts demo|up|down");
  Deno.exit(2);
}
