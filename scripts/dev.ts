/**
 * The local environment for `make demo`, `make dev-up` and `make dev-down`: a real
 * kube-apiserver + etcd (CRDs installed), PostgreSQL 15 with a non-superuser admin (like RDS),
 * and MinIO, all on loopback. The same helpers start them as in the tests.
 *
 *   deno run -A scripts/dev.ts demo   everything + the controller + examples/, until Ctrl-C
 *   deno run -A scripts/dev.ts up     the environment in the background; writes .dev/env
 *   deno run -A scripts/dev.ts down   stops what `up` started, and returns once it has stopped
 *
 * Each run keeps its files in `.dev/runs/<run id>/`; `.dev/env` and `.dev/kubeconfig` are
 * symlinks to the current run's files. A run removes only its own directory, and the symlinks
 * only while they still point into it, so a run tearing down late never removes the files of
 * the run after it. `.dev/serve.pid` names the background run: `<pid> <start time> <run id>`.
 * `DBTETHER_DEV_DIR` moves `.dev` elsewhere (the tests of this script use a temp dir).
 *
 * Over 400 lines: a developer tool (not shipped) whose three commands share the process
 * tracking and the per-run files; splitting it would scatter the ownership rules above.
 */
import { parseAllDocuments, stringify } from "yaml";
import { startKube } from "../tests/helpers/kube.ts";
import { startPostgres } from "../tests/helpers/postgres.ts";
import { MINIO_PASSWORD, MINIO_USER, startMinio } from "../tests/helpers/storage_servers.ts";
import { pgToolArgs, runProgram, startProgram } from "../tests/helpers/program.ts";
import { freePort } from "../tests/helpers/free_port.ts";
import { type DemoObject, pendingOf, progressLine } from "./demo_status.ts";
import {
  alive,
  commandLine,
  formatProcesses,
  parseProcesses,
  type ProcessId,
  processOf,
  withDescendants,
} from "./dev_processes.ts";

const root = new URL("../", import.meta.url).pathname;
const devDir = (Deno.env.get("DBTETHER_DEV_DIR") ?? `${root}.dev`).replace(/\/+$/, "");
const say = (s: string) => console.log(s);
/** How long `down` waits for every process of the environment to exit. */
const STOP_TIMEOUT_MS = 60_000;
/** How long `up` waits for the environment to start. */
const START_TIMEOUT_MS = 180_000;

const runDir = (id: string) => `${devDir}/runs/${id}`;
/** How messages name the dev directory: `.dev` unless DBTETHER_DEV_DIR moved it. */
const shownDevDir = devDir === `${root}.dev` ? ".dev" : devDir;

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
  /** pid of the PostgreSQL server (pg_ctl starts it in its own session). */
  postmaster: number;
}

async function startEnvironment(run: string): Promise<Env> {
  const dir = runDir(run);
  await Deno.mkdir(dir, { recursive: true });
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
  const kubeconfig = `${dir}/kubeconfig`;
  await Deno.copyFile(kube.kubeconfigPath, kubeconfig);
  await Deno.chmod(kubeconfig, 0o600);
  const envLines = [
    `export KUBECONFIG=${kubeconfig}`,
    `export PATH=${kube.binDir}:${pg.clientDir}:$PATH`,
    `export PGHOST=${pg.host}`,
    `export PGPORT=${pg.port}`,
    `export PGUSER=${pg.admin.user}`,
    `export PGPASSWORD='${pg.admin.password}'`,
    `export PGDATABASE=postgres`,
    `export AWS_ACCESS_KEY_ID=${MINIO_USER}`,
    `export AWS_SECRET_ACCESS_KEY=${MINIO_PASSWORD}`,
    `export DBTETHER_DEV_S3_ENDPOINT=${minio.endpoint}`,
    // Free when the environment started: `make run` uses them unless given other flags.
    `export DBTETHER_DEV_METRICS_ADDRESS=127.0.0.1:${freePort()}`,
    `export DBTETHER_DEV_HEALTH_ADDRESS=127.0.0.1:${freePort()}`,
    // The dev server's own client tools (any major): `make run` adds them to the binary's
    // --allow-run list and passes --pg-tools-dir, so backups work against every major.
    `export DBTETHER_DEV_PG_TOOLS_DIR=${pg.clientDir}`,
  ];
  await Deno.writeTextFile(`${dir}/env`, envLines.join("\n") + "\n", { mode: 0o600 });
  await pointAt(`${devDir}/env`, `${dir}/env`);
  await pointAt(`${devDir}/kubeconfig`, kubeconfig);
  const postmaster = Number(
    (await Deno.readTextFile(`${pg.dir}/data/postmaster.pid`)).split("\n")[0],
  );
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
    postmaster,
    async [Symbol.asyncDispose]() {
      await Promise.resolve(minio[Symbol.asyncDispose]()).catch(() => {});
      await Promise.resolve(pg[Symbol.asyncDispose]()).catch(() => {});
      await kube.stop().catch(() => {});
      await removeRun(run);
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

/** The kinds the demo applies, in `kubectl get` order. */
const DEMO_KINDS =
  "dbclusters,databases,databaseusers,postgresdatabases,backupstorages,backups,restores";

const lastLines = (text: string, n = 12) => text.trim().split("\n").slice(-n).join("\n");

/** Runs `make demo`: exits non-zero when the controller stops or the examples do not converge. */
async function demo(): Promise<number> {
  await using env = await startEnvironment(`demo-${Deno.pid}`);
  const ports = { metrics: freePort(), health: freePort() };
  const extra = (Deno.env.get("DBTETHER_DEMO_CONTROLLER_ARGS") ?? "").split(/\s+/).filter(Boolean);
  say("Starting dbtether (deno run with the binary's permission flags) ...");
  await using program = await startProgram([
    "run",
    "--kubeconfig",
    env.kubeconfig,
    "--log-format",
    "text",
    "--metrics-bind-address",
    `127.0.0.1:${ports.metrics}`,
    "--health-probe-bind-address",
    `127.0.0.1:${ports.health}`,
    // pg-db-operator's PostgresDatabase uses the demo's server too.
    "--postgresdatabase-cluster",
    CLUSTER,
    ...pgToolArgs(),
    ...extra,
  ], { env: {} });
  let exitCode: number | undefined;
  const exited = program.process.status.then((st) => exitCode = st.code);
  const controllerGone = () => {
    say(`\nThe dbtether controller exited (code ${exitCode}). Its last lines:
${lastLines(program.logs())}

Hint: fix what its last line says (a port or file named by a flag, the kubeconfig) and run
make demo again; DBTETHER_DEMO_CONTROLLER_ARGS adds flags to the controller.`);
    return 1;
  };
  const examples = await exampleManifests(env);
  for (const { file, yaml } of examples) {
    if (exitCode !== undefined) return controllerGone();
    await ensureNamespaces(env, yaml);
    const r = await env.kubectl(["apply", "-f", "-"], yaml);
    say(`\n$ kubectl apply -f examples/${file}\n${(r.stdout + r.stderr).trim()}`);
  }
  const timeoutS = Number(Deno.env.get("DBTETHER_DEMO_TIMEOUT") ?? "180");
  const deadline = Date.now() + timeoutS * 1000;
  const table = async () =>
    `\n$ kubectl get ${DEMO_KINDS} -A\n${(await env.kubectl(["get", DEMO_KINDS, "-A"])).stdout}`;
  let items: DemoObject[] = [];
  let last = "";
  say("");
  for (;;) {
    if (exitCode !== undefined) return controllerGone();
    const r = await env.kubectl(["get", DEMO_KINDS, "-A", "-o", "json"]);
    if (r.code === 0) items = (JSON.parse(r.stdout) as { items: DemoObject[] }).items;
    const line = progressLine(items);
    if (line !== last) say(line);
    last = line;
    if (items.length > 0 && pendingOf(items).length === 0) break;
    if (Date.now() > deadline) {
      say(await table());
      say(`Not ready after ${timeoutS} s:`);
      for (const p of pendingOf(items)) say(`  ${p.id}: ${p.reason}: ${p.message}`);
      say(`\nThe controller's last lines:\n${lastLines(program.logs())}`);
      return 1;
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 1000))]);
  }
  say(await table());
  await showLogin(env);
  await showPlan(env, examples);
  say(`
dbtether is running (controller pid ${program.process.pid}).
  Metrics: http://127.0.0.1:${ports.metrics}/metrics   Readiness: http://127.0.0.1:${ports.health}/readyz

${await writeTour()}

Press Ctrl-C to stop everything; the controller's log follows.
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
  // DBTETHER_DEMO_EXIT=1 (CI, tests): show the result and stop instead of waiting.
  const wait = Deno.env.get("DBTETHER_DEMO_EXIT") === "1"
    ? new Promise((r) => setTimeout(r, 2000))
    : stop;
  await Promise.race([wait, exited]);
  clearInterval(tail);
  if (exitCode !== undefined) return controllerGone();
  say("\nStopping ...");
  await program.stop("SIGTERM");
  return 0;
}

/** One thing to try after the demo: a script that works in the demo's environment as it is. */
interface TourStep {
  file: string;
  what: string;
  body: string;
}

function tourSteps(): TourStep[] {
  const source = `source ${shownDevDir}/env`;
  const secret =
    `secret() { kubectl get secret my-app-readonly-credentials -o jsonpath="{.data.$1}" | base64 -d; }`;
  return [
    {
      file: "login.sh",
      what: "Log in with a generated Secret, as an application would",
      body: [
        source,
        secret,
        `PGUSER="$(secret username)" PGPASSWORD="$(secret password)" \\`,
        `  psql -d "$(secret database)" -c 'select current_user, current_database()'`,
      ].join("\n"),
    },
    {
      file: "backup-restore.sh",
      what: "Back up my-app-db and restore it into my-app-db-copy",
      body: [
        source,
        "kubectl apply -f - <<'YAML'",
        "apiVersion: dbtether.io/v1alpha1",
        "kind: Backup",
        "metadata: {name: tour-backup, namespace: default}",
        "spec: {databaseRef: {name: my-app-db}, storageRef: {name: local}}",
        "---",
        "apiVersion: dbtether.io/v1alpha1",
        "kind: Restore",
        "metadata: {name: tour-restore, namespace: default}",
        "spec:",
        "  source: {backupRef: {name: tour-backup}}",
        "  target: {databaseRef: {name: my-app-db-copy}}",
        "  onConflict: drop",
        "YAML",
        "kubectl wait --for=jsonpath='{.status.phase}'=Completed restore/tour-restore --timeout=180s",
        "kubectl get backup/tour-backup restore/tour-restore",
      ].join("\n"),
    },
    {
      file: "rotate.sh",
      what: "Rotate my-app-readonly's password and watch its Secret change",
      body: [
        source,
        secret,
        `before="$(secret password)"`,
        `kubectl annotate databaseuser my-app-readonly dbtether.io/rotate="$(date +%s)" --overwrite`,
        `for _ in $(seq 90); do [ "$(secret password)" != "$before" ] && break; sleep 1; done`,
        `[ "$(secret password)" != "$before" ] && echo "rotated: the Secret holds a new password"`,
      ].join("\n"),
    },
  ];
}

/** Writes the tour into `.dev/tour/` and returns the text that shows it. */
async function writeTour(): Promise<string> {
  const dir = `${devDir}/tour`;
  await Deno.mkdir(dir, { recursive: true });
  const out = [
    `Try next, in another terminal from this directory (each is a script in ${shownDevDir}/tour/):`,
  ];
  for (const [i, t] of tourSteps().entries()) {
    const script = `#!/usr/bin/env bash\nset -euo pipefail\ncd '${root}'\n${t.body}\n`;
    await Deno.writeTextFile(`${dir}/${t.file}`, script, { mode: 0o755 });
    out.push(`\n  ${i + 1}. ${t.what}   (bash ${shownDevDir}/tour/${t.file})`);
    out.push(t.body.split("\n").map((l) => `       ${l}`).join("\n"));
  }
  return out.join("\n");
}

/**
 * `dbtether plan` on the examples as applied: every resource converged, so "no changes" (exit
 * 0); docs/plan.md shows it on a change.
 */
async function showPlan(env: Env, examples: { file: string; yaml: string }[]): Promise<void> {
  const file = `${devDir}/plan-examples.yaml`;
  await Deno.writeTextFile(file, examples.map((e) => e.yaml).join("\n---\n"));
  const r = await runProgram(["plan", "-f", file, "--kubeconfig", env.kubeconfig]);
  say(`\n$ dbtether plan -f examples/\n${(r.stdout + r.stderr).trim()}\n(exit ${r.code})`);
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

/** `.dev/serve.pid`: which process runs the background environment, and its run id. */
interface ServeRecord {
  process: ProcessId;
  run: string;
}

async function readServeRecord(): Promise<ServeRecord | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${devDir}/serve.pid`);
  } catch {
    return undefined;
  }
  const [pid, start, run] = text.trim().split(" ");
  if (!pid || !start || !run || !/^[A-Za-z0-9-]+$/.test(run)) return undefined;
  return { process: { pid: Number(pid), start: Number(start) }, run };
}

/** Replaces `link` with a symlink to `target` atomically (rename over the old one). */
async function pointAt(link: string, target: string): Promise<void> {
  const tmp = `${link}.${Deno.pid}.tmp`;
  await Deno.remove(tmp).catch(() => {});
  await Deno.symlink(target, tmp);
  await Deno.rename(tmp, link);
}

/** Removes `link` only if it still points into `dir`. */
async function removeLinkInto(link: string, dir: string): Promise<void> {
  const target = await Deno.readLink(link).catch(() => undefined);
  if (target !== undefined && target.startsWith(`${dir}/`)) await Deno.remove(link).catch(() => {});
}

/** Removes a run's directory and whatever of the shared names still belongs to it. */
async function removeRun(run: string): Promise<void> {
  const dir = runDir(run);
  await removeLinkInto(`${devDir}/env`, dir);
  await removeLinkInto(`${devDir}/kubeconfig`, dir);
  const rec = await readServeRecord();
  if (rec?.run === run) await Deno.remove(`${devDir}/serve.pid`).catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

async function serve(run: string): Promise<void> {
  const self = processOf(Deno.pid)!;
  await Deno.mkdir(runDir(run), { recursive: true });
  // Written first, so `down` finds this run even while it is still starting.
  await Deno.writeTextFile(`${devDir}/serve.pid`, `${self.pid} ${self.start} ${run}\n`);
  try {
    await using env = await startEnvironment(run);
    const postmaster = processOf(env.postmaster);
    const ours = withDescendants([self, ...(postmaster ? [postmaster] : [])]);
    await Deno.writeTextFile(`${runDir(run)}/processes`, formatProcesses(ours));
    await Deno.writeTextFile(`${runDir(run)}/ready`, new Date().toISOString());
    await new Promise<void>((resolve) => {
      Deno.addSignalListener("SIGTERM", () => resolve());
      Deno.addSignalListener("SIGINT", () => resolve());
    });
  } finally {
    await removeRun(run);
  }
}

async function up(): Promise<void> {
  const rec = await readServeRecord();
  if (rec && alive(rec.process)) {
    say(`The dev environment is already up (pid ${rec.process.pid}); .dev/env is unchanged.
\`make dev-down\` stops it.`);
    return;
  }
  if (rec) {
    say(`Cleaning up after a dev environment that is no longer running (pid ${rec.process.pid}).`);
    await stopRun(rec);
  }
  await Deno.mkdir(devDir, { recursive: true });
  const run = `${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  const log = await Deno.open(`${devDir}/dev.log`, { create: true, write: true, truncate: true });
  // setsid: the environment outlives this command and the terminal.
  const child = new Deno.Command("setsid", {
    args: [Deno.execPath(), "run", "-A", `${root}scripts/dev.ts`, "serve", run],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  child.stdout.pipeTo(log.writable).catch(() => {});
  child.stderr.pipeTo(new WritableStream()).catch(() => {});
  let exited = false;
  child.status.then(() => exited = true).catch(() => exited = true);
  child.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await exists(`${runDir(run)}/ready`))) {
    if (exited || Date.now() > deadline) {
      const tail = (await Deno.readTextFile(`${devDir}/dev.log`).catch(() => ""))
        .trim().split("\n").slice(-15).join("\n");
      throw new Error(
        `The dev environment did not start${exited ? "" : ` within ${START_TIMEOUT_MS / 1000} s`}` +
          `; the end of ${devDir}/dev.log:\n${tail}`,
      );
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  say(`The dev environment is up: kube-apiserver, PostgreSQL and MinIO on 127.0.0.1.

  source .dev/env                 # KUBECONFIG, PG* of the admin role, PATH with kubectl and psql
  kubectl get dbclusters          # DBCluster ${CLUSTER} needs examples/ or your own manifest
  make run                        # run dbtether against it
  make dev-down                   # stop everything
`);
  Deno.exit(0);
}

/**
 * Stops a run and returns only when every one of its processes has exited and its files are
 * gone; throws, naming what still runs, after {@link STOP_TIMEOUT_MS}.
 */
async function stopRun(rec: ServeRecord): Promise<void> {
  const recorded = parseProcesses(
    await Deno.readTextFile(`${runDir(rec.run)}/processes`).catch(() => ""),
  );
  const all = withDescendants([rec.process, ...recorded]);
  const signal = (p: ProcessId, sig: Deno.Signal) => {
    try {
      if (alive(p)) Deno.kill(p.pid, sig);
    } catch { /* gone meanwhile */ }
  };
  // The run's own teardown stops its servers in order; only a run whose process is gone (it
  // was killed) leaves them for us to stop directly.
  if (alive(rec.process)) signal(rec.process, "SIGTERM");
  else for (const p of all) signal(p, "SIGTERM");
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  for (;;) {
    const left = all.filter(alive);
    if (left.length === 0) break;
    if (Date.now() > deadline) {
      const what = left.map((p) => `  pid ${p.pid}: ${commandLine(p.pid)}`).join("\n");
      throw new Error(
        `Cannot stop the dev environment: still running after ${STOP_TIMEOUT_MS / 1000} s:\n` +
          `${what}\nStop them with: kill -9 ${left.map((p) => p.pid).join(" ")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await removeRun(rec.run);
}

async function down(): Promise<void> {
  const rec = await readServeRecord();
  if (!rec) {
    say("The dev environment is not running.");
    return;
  }
  await stopRun(rec);
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
if (cmd === "demo") Deno.exit(await demo());
else if (cmd === "up") await up();
else if (cmd === "down") await down();
else if (cmd === "serve" && Deno.args[1]) await serve(Deno.args[1]);
else {
  console.error("Usage: deno run -A scripts/dev.ts demo|up|down");
  Deno.exit(2);
}
