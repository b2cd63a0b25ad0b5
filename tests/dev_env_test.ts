/**
 * `make dev-up` / `make dev-down` back to back, as scripts and CI jobs run them: down returns
 * only when every process of the environment has exited and its files are gone, up on a running
 * environment leaves it as it is, and a stale pid file is cleaned up rather than trusted.
 * `DBTETHER_DEV_DIR` keeps the test away from a developer's own `.dev`.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { alive, parseProcesses, type ProcessId } from "../scripts/dev_processes.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const root = new URL("../", import.meta.url).pathname;

async function sh(script: string, devDir: string) {
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    cwd: root,
    env: { DBTETHER_DEV_DIR: devDir },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

async function processesOfRun(devDir: string): Promise<ProcessId[]> {
  const link = await Deno.readLink(`${devDir}/env`);
  const dir = link.slice(0, link.lastIndexOf("/"));
  return parseProcesses(await Deno.readTextFile(`${dir}/processes`));
}

async function exists(p: string): Promise<boolean> {
  return await Deno.lstat(p).then(() => true, () => false);
}

Deno.test("make dev-up && make dev-down && make dev-up, three times: each environment works and none outlives its down", async () => {
  const devDir = await Deno.makeTempDir({ prefix: "dbtether-devenv-" });
  const earlier: ProcessId[] = [];
  try {
    for (let round = 1; round <= 3; round++) {
      const r = await sh("make -s dev-up && make -s dev-down && make -s dev-up", devDir);
      assertEquals(r.code, 0, `round ${round}: ${r.stdout}${r.stderr}`);
      const ns = await sh(`source ${devDir}/env && kubectl get ns`, devDir);
      assertEquals(ns.code, 0, `round ${round}: kubectl get ns: ${ns.stderr}`);
      assert(ns.stdout.includes("kube-system"), ns.stdout);
      const left = earlier.filter(alive);
      assertEquals(left, [], `round ${round}: processes of an earlier environment still run`);
      const current = await processesOfRun(devDir);
      assert(
        current.length >= 4,
        `expected etcd, apiserver, postgres and minio: ${JSON.stringify(current)}`,
      );
      earlier.push(...current);
    }
    const r = await sh("make -s dev-down", devDir);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertEquals(earlier.filter(alive), [], "processes left after the last make dev-down");
    for (const f of ["env", "kubeconfig", "serve.pid"]) {
      assert(!(await exists(`${devDir}/${f}`)), `${f} is left after make dev-down`);
    }
    const runs = [...Deno.readDirSync(`${devDir}/runs`)];
    assertEquals(runs.map((e) => e.name), [], "run directories left after make dev-down");
  } finally {
    await sh("make -s dev-down", devDir);
    await Deno.remove(devDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("make dev-up on a running environment keeps it; a stale pid file is cleaned up", async () => {
  const devDir = await Deno.makeTempDir({ prefix: "dbtether-devenv-" });
  try {
    // A pid file of a process that is gone (pid 1's start time never matches a fresh one).
    await Deno.writeTextFile(`${devDir}/serve.pid`, "1 1 stale-run\n");
    await Deno.mkdir(`${devDir}/runs/stale-run`, { recursive: true });
    const first = await sh("make -s dev-up", devDir);
    assertEquals(first.code, 0, first.stdout + first.stderr);
    assert(first.stdout.includes("no longer running"), first.stdout);
    assert(!(await exists(`${devDir}/runs/stale-run`)), "the stale run's directory is left");
    const env = await Deno.readTextFile(`${devDir}/env`);
    const again = await sh("make -s dev-up", devDir);
    assertEquals(again.code, 0, again.stdout + again.stderr);
    assert(again.stdout.includes("already up"), again.stdout);
    assertEquals(await Deno.readTextFile(`${devDir}/env`), env, ".dev/env changed");
  } finally {
    await sh("make -s dev-down", devDir);
    await Deno.remove(devDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("make run backs up the dev server with that server's own client tools (any major)", async () => {
  // The binary's --allow-run list names the distributions' tool paths only; `make run` adds the
  // dev server's tools (DBTETHER_DEV_PG_TOOLS_DIR in the dev env), so DBTETHER_PG_VERSION=18 or
  // 13 works as well as Debian's 15.
  const devDir = await Deno.makeTempDir({ prefix: "dbtether-devrun-" });
  const backups = await Deno.makeTempDir({ prefix: "dbtether-devrun-backups-" });
  let run: Deno.ChildProcess | undefined;
  try {
    const up = await sh("make -s dev-up", devDir);
    assertEquals(up.code, 0, up.stdout + up.stderr);
    run = new Deno.Command("make", {
      args: ["-s", "run", "ARGS=--backoff-base 200ms --backoff-max 5s"],
      cwd: root,
      env: { DBTETHER_DEV_DIR: devDir },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const vars = await sh(
      `source ${devDir}/env && printf '%s\\n' "$PGHOST" "$PGPORT" "$PGUSER"`,
      devDir,
    );
    const [host, port, user] = vars.stdout.trim().split("\n");
    const password = (await sh(`source ${devDir}/env && printf '%s' "$PGPASSWORD"`, devDir)).stdout;
    const manifest = `apiVersion: v1
kind: Secret
metadata: { name: dev-admin, namespace: default }
stringData: { username: "${user}", password: "${password}" }
---
apiVersion: dbtether.io/v1alpha1
kind: DBCluster
metadata: { name: dev-pg }
spec:
  endpoint: "${host}"
  port: ${port}
  credentialsSecretRef: { name: dev-admin, namespace: default }
---
apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: devrun, namespace: default }
spec: { clusterRef: { name: dev-pg }, deletionPolicy: Delete }
---
apiVersion: dbtether.io/v1alpha1
kind: BackupStorage
metadata: { name: devrun-local }
spec: { local: { path: "${backups}" } }
---
apiVersion: dbtether.io/v1alpha1
kind: Backup
metadata: { name: devrun, namespace: default }
spec: { databaseRef: { name: devrun }, storageRef: { name: devrun-local } }
`;
    const applied = await sh(
      `source ${devDir}/env && kubectl apply -f - <<'EOF_'\n${manifest}EOF_`,
      devDir,
    );
    assertEquals(applied.code, 0, applied.stdout + applied.stderr);
    const status = await waitFor("the dev server's Backup to complete", async () => {
      const r = await sh(
        `source ${devDir}/env && kubectl get backup devrun -n default -o jsonpath='{.status.phase} {.status.pgDumpVersion} {.status.message}'`,
        devDir,
      );
      return r.stdout.startsWith("Completed ") ? r.stdout : undefined;
    }, { timeoutMs: budget("backup") });
    // The dev env's own pg_dump (first on its PATH): of the server's major, or 14 for a 13 server.
    const tools = await sh(`source ${devDir}/env && pg_dump --version`, devDir);
    const version = tools.stdout.trim().split(" ").pop()!;
    assertEquals(status.split(" ")[1], version, `${status}; the dev tools: ${tools.stdout}`);
  } finally {
    try {
      run?.kill("SIGTERM");
    } catch { /* gone */ }
    await run?.status;
    await sh("make -s dev-down", devDir);
    await Deno.remove(devDir, { recursive: true }).catch(() => {});
    await Deno.remove(backups, { recursive: true }).catch(() => {});
  }
});
