/**
 * `make dev-up` / `make dev-down` back to back, as scripts and CI jobs run them: down returns
 * only when every process of the environment has exited and its files are gone, up on a running
 * environment leaves it as it is, and a stale pid file is cleaned up rather than trusted.
 * `DBTETHER_DEV_DIR` keeps the test away from a developer's own `.dev`.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { alive, parseProcesses, type ProcessId } from "../scripts/dev_processes.ts";

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
