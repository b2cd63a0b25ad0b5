/**
 * The command line as users meet it: help texts, flag errors as the program prints them and a
 * clear message (no stack trace) when no cluster is reachable. Runs the real program with the
 * binary's permission flags. Flag parsing itself is tested in config_test.ts, the kubeconfig
 * resolution order in controllers/runtime/kube_test.ts.
 */
import { budget } from "./helpers/timeouts.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { runArgs } from "./helpers/env.ts";
import { kubeconfigText } from "./helpers/fixtures.ts";
import { runProgram } from "./helpers/program.ts";
import { startKube } from "./helpers/kube.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const noTrace = (s: string) => !/\bat .*\.ts:\d+|Stack backtrace|Uncaught/.test(s);

Deno.test({ name: "help, version, crds and an unknown command", ...opts }, async (t) => {
  await t.step("dbtether --help lists the commands with examples", async () => {
    const r = await runProgram(["--help"]);
    assertEquals(r.code, 0);
    for (const cmd of ["run", "backup", "restore", "crds", "version", "Examples:"]) {
      assert(r.stdout.includes(cmd), cmd);
    }
  });
  for (const cmd of ["run", "backup", "restore", "backups", "plan", "crds"]) {
    await t.step(`dbtether ${cmd} --help shows usage and examples`, async () => {
      const r = await runProgram([cmd, "--help"]);
      assertEquals(r.code, 0, r.stderr);
      assert(/Usage: dbtether/.test(r.stdout), r.stdout);
      assert(/Example/.test(r.stdout), r.stdout);
    });
  }
  await t.step("dbtether version prints the version and the Deno version", async () => {
    const r = await runProgram(["version"]);
    assertEquals(r.code, 0);
    assert(/^dbtether \S+ \(deno 2\.9\.\d+\)$/m.test(r.stdout), r.stdout);
  });
  await t.step("an unknown command exits 2 and names it", async () => {
    const r = await runProgram(["frobnicate"]);
    assertEquals(r.code, 2);
    assert(/unknown command "frobnicate"/.test(r.stderr));
  });
  await t.step("dbtether crds prints all 8 CRDs", async () => {
    const r = await runProgram(["crds"]);
    assertEquals(r.code, 0);
    assertEquals(r.stdout.match(/^kind: CustomResourceDefinition$/gm)?.length, 8);
  });
});

Deno.test({ name: "run: clear errors, no stack traces", ...opts }, async (t) => {
  const dir = await Deno.makeTempDir();
  await t.step("no configuration anywhere", async () => {
    const r = await runProgram(["run"], { env: { HOME: dir, KUBECONFIG: "" } });
    assertEquals(r.code, 1);
    assert(/^dbtether: Cannot find a Kubernetes configuration/m.test(r.stderr), r.stderr);
    assert(noTrace(r.stderr), r.stderr);
  });
  await t.step("a missing --kubeconfig file", async () => {
    const r = await runProgram(["run", "--kubeconfig", `${dir}/nope.yaml`]);
    assertEquals(r.code, 1);
    assert(
      /Cannot read the kubeconfig .*nope\.yaml given with --kubeconfig: no such file \(pass/.test(
        r.stderr,
      ),
      r.stderr,
    );
  });
  await t.step("a --kubeconfig that is not a kubeconfig", async () => {
    await Deno.writeTextFile(`${dir}/notes.txt`, "just some text\n");
    const r = await runProgram(["run", "--kubeconfig", `${dir}/notes.txt`]);
    assertEquals(r.code, 1);
    assert(
      /Cannot use the kubeconfig .*notes\.txt given with --kubeconfig: it has no current context/
        .test(r.stderr),
      r.stderr,
    );
    assert(noTrace(r.stderr), r.stderr);
  });
  await t.step("a --pg-tools-dir that does not exist", async () => {
    const r = await runProgram(["run", "--pg-tools-dir", `${dir}/no-tools`]);
    assertEquals(r.code, 1);
    assert(
      new RegExp(`^dbtether: Cannot use --pg-tools-dir ${dir}/no-tools: no such directory`, "m")
        .test(r.stderr),
      r.stderr,
    );
  });
  for (const flag of ["--metrics-bind-address", "--health-probe-bind-address"]) {
    await t.step(`${flag} on a port that is taken`, async () => {
      using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const addr = `127.0.0.1:${(taken.addr as Deno.NetAddr).port}`;
      await Deno.writeTextFile(`${dir}/ok.yaml`, kubeconfigText("https://127.0.0.1:1"));
      const other = flag === "--metrics-bind-address"
        ? "--health-probe-bind-address"
        : "--metrics-bind-address";
      const r = await runProgram(["run", "--kubeconfig", `${dir}/ok.yaml`, flag, addr, other, "0"]);
      assertEquals(r.code, 1, r.stderr);
      assertEquals(
        r.stderr.trim().split("\n").at(-1),
        `dbtether: Cannot listen on ${addr} for ${flag}: address already in use ` +
          "(pass another address, or 0 to disable)",
      );
    });
    await t.step(`${flag} that is not an address exits 2`, async () => {
      const r = await runProgram(["run", flag, "localhost"]);
      assertEquals(r.code, 2);
      assert(
        r.stderr.startsWith(`dbtether: Invalid ${flag} "localhost": expected [host]:port`),
        r.stderr,
      );
    });
  }
  await t.step("an unreachable cluster", async () => {
    const port = (() => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const p = (l.addr as Deno.NetAddr).port;
      l.close();
      return p;
    })();
    await Deno.writeTextFile(`${dir}/down.yaml`, kubeconfigText(`https://127.0.0.1:${port}`));
    const r = await runProgram([
      "run",
      "--startup-timeout",
      "3s",
      "--metrics-bind-address",
      "0",
      "--health-probe-bind-address",
      "0",
    ], {
      env: { KUBECONFIG: `${dir}/down.yaml`, HOME: dir },
    });
    assertEquals(r.code, 1);
    assert(
      new RegExp(
        `^dbtether: Cannot connect to Kubernetes at https://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`,
        "m",
      ).test(r.stderr),
      r.stderr,
    );
    assert(noTrace(r.stderr), r.stderr);
  });
  await t.step("a bad flag exits 2", async () => {
    const r = await runProgram(["run", "--workers", "many"]);
    assertEquals(r.code, 2);
    assertEquals(
      r.stderr.trim(),
      'dbtether: Invalid --workers "many": expected a whole number ≥ 1',
    );
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test({ name: "run: SIGTERM shuts down cleanly with exit 0", ...opts }, async () => {
  await using kube = await startKube({ crds: true });
  const { startProgram } = await import("./helpers/program.ts");
  await using p = await startProgram(runArgs(kube.kubeconfigPath));
  const deadline = Date.now() + budget("react");
  while (!/Caches synced/.test(p.logs()) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert(/Caches synced/.test(p.logs()), p.logs());
  assertEquals(await p.stop("SIGTERM"), 0);
  assert(/"msg":"Stopped"/.test(p.logs()), p.logs());
});
