/**
 * The command line as users meet it: help texts, flag errors, the kubeconfig resolution order
 * and a clear message (no stack trace) when no cluster is reachable. Runs the real program with
 * the binary's permission flags.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { loadKubeConfig } from "../controllers/runtime/kube.ts";
import { ConfigError, parseRunConfig } from "../config.ts";
import { runProgram } from "./helpers/program.ts";
import { startKube } from "./helpers/kube.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const noTrace = (s: string) => !/\bat .*\.ts:\d+|Stack backtrace|Uncaught/.test(s);

function kubeconfigText(server: string): string {
  return `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "${server}", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: not-a-real-token } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`;
}

Deno.test({ name: "help and version", ...opts }, async (t) => {
  await t.step("dbtether --help lists the commands with examples", async () => {
    const r = await runProgram(["--help"]);
    assertEquals(r.code, 0);
    for (const cmd of ["run", "backup", "restore", "crds", "version", "Examples:"]) {
      assert(r.stdout.includes(cmd), cmd);
    }
  });
  for (const cmd of ["run", "backup", "restore", "crds"]) {
    await t.step(`dbtether ${cmd} --help shows usage and examples`, async () => {
      const r = await runProgram([cmd, "--help"]);
      assertEquals(r.code, 0, r.stderr);
      assert(/Usage: dbtether/.test(r.stdout), r.stdout);
      assert(/Example/.test(r.stdout), r.stdout);
    });
  }
  await t.step("version", async () => {
    const r = await runProgram(["version"]);
    assertEquals(r.code, 0);
    assert(/^dbtether \S+ \(deno 2\.9\.\d+\)$/m.test(r.stdout), r.stdout);
  });
  await t.step("an unknown command exits 2 with help", async () => {
    const r = await runProgram(["frobnicate"]);
    assertEquals(r.code, 2);
    assert(/unknown command "frobnicate"/.test(r.stderr));
  });
  await t.step("crds prints every CRD", async () => {
    const r = await runProgram(["crds"]);
    assertEquals(r.code, 0);
    assertEquals(r.stdout.match(/^kind: CustomResourceDefinition$/gm)?.length, 8);
  });
});

Deno.test("run flags parse into a frozen config", async (t) => {
  const base = { env: {}, hostname: "h" };
  await t.step("defaults", () => {
    const c = parseRunConfig({ ...base, args: [] });
    assertEquals([c.workers, c.leaderElect, c.metricsAddress, c.healthAddress, c.namespaces], [
      2,
      false,
      ":8080",
      ":8081",
      [],
    ]);
    assert(Object.isFrozen(c));
  });
  await t.step("values", () => {
    const c = parseRunConfig({
      ...base,
      args: [
        "--workers",
        "4",
        "--leader-elect",
        "--namespaces",
        "a, b",
        "--lease-duration",
        "20s",
        "--log-format",
        "text",
      ],
      podNamespace: "ops",
    });
    assertEquals([
      c.workers,
      c.leaderElect,
      c.namespaces,
      c.leaseDurationMs,
      c.leaderElectionNamespace,
      c.logFormat,
    ], [
      4,
      true,
      ["a", "b"],
      20_000,
      "ops",
      "text",
    ]);
  });
  await t.step("bad values are one-line ConfigErrors", () => {
    const bad: [string[], RegExp][] = [
      [["--workers", "0"], /Invalid --workers "0"/],
      [
        ["--log-level", "loud"],
        /Invalid --log-level "loud": expected one of debug, info, warn, error/,
      ],
      [["--lease-duration", "5s"], /lease-duration > --renew-deadline/],
      [["--graceful-shutdown-timeout", "soon"], /Invalid --graceful-shutdown-timeout "soon"/],
      [["--no-such-flag"], /Unknown option '--no-such-flag'/],
    ];
    for (const [args, re] of bad) {
      try {
        parseRunConfig({ ...base, args });
        assert(false, `accepted ${args}`);
      } catch (e) {
        assert(e instanceof ConfigError && re.test(e.message), `${args}: ${(e as Error).message}`);
      }
    }
  });
  await t.step("the backup signing Secret: default beside the Lease, or the flag", () => {
    const d = parseRunConfig({ ...base, args: [], podNamespace: "ops" });
    assertEquals(d.backupSigningSecret, { namespace: "ops", name: "dbtether-backup-signing" });
    const f = parseRunConfig({ ...base, args: ["--backup-signing-secret", "sec/keys.v2"] });
    assertEquals(f.backupSigningSecret, { namespace: "sec", name: "keys.v2" });
    for (const v of ["keys", "a/b/c", "A/b", "/x"]) {
      try {
        parseRunConfig({ ...base, args: ["--backup-signing-secret", v] });
        assert(false, `accepted ${v}`);
      } catch (e) {
        assert(e instanceof ConfigError && /--backup-signing-secret/.test(e.message), v);
      }
    }
  });
  await t.step("pg-db-operator rotation variable", () => {
    const c = parseRunConfig({
      ...base,
      args: [],
      env: { PG_DB_OPERATOR_PASSWORD_ROTATION_INTERVAL_SECONDS: "3600" },
    });
    assertEquals(c.postgresDatabase.rotationIntervalMs, 3_600_000);
    assertEquals(
      parseRunConfig({ ...base, args: [] }).postgresDatabase.rotationIntervalMs,
      undefined,
      "unset: no rotation",
    );
  });
});

Deno.test("kubeconfig resolution order: flag, $KUBECONFIG, ~/.kube/config, in-cluster", async (t) => {
  const dir = await Deno.makeTempDir();
  const write = async (name: string, server: string) => {
    await Deno.mkdir(`${dir}/${name}`.replace(/\/[^/]+$/, ""), { recursive: true });
    await Deno.writeTextFile(`${dir}/${name}`, kubeconfigText(server));
    return `${dir}/${name}`;
  };
  const flag = await write("flag.yaml", "https://flag.example:6443");
  const envPath = await write("env.yaml", "https://env.example:6443");
  await write("home/.kube/config", "https://home.example:6443");
  const exists = (p: string) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  };
  const server = (o: Parameters<typeof loadKubeConfig>[0]) =>
    loadKubeConfig(o).kc.getCurrentCluster()?.server;
  const home = `${dir}/home`;
  await t.step("the flag wins", () => {
    assertEquals(
      server({ path: flag, env: { KUBECONFIG: envPath, HOME: home }, exists }),
      "https://flag.example:6443",
    );
  });
  await t.step("then $KUBECONFIG (first existing entry)", () => {
    assertEquals(
      server({ env: { KUBECONFIG: `${dir}/missing:${envPath}`, HOME: home }, exists }),
      "https://env.example:6443",
    );
  });
  await t.step("then ~/.kube/config", () => {
    assertEquals(server({ env: { HOME: home }, exists }), "https://home.example:6443");
  });
  await t.step("then in-cluster (needs KUBERNETES_SERVICE_HOST)", () => {
    // client-node reads the service account token from its fixed path; absent here, so it throws.
    let msg = "";
    try {
      loadKubeConfig({
        env: { HOME: `${dir}/nowhere`, KUBERNETES_SERVICE_HOST: "10.0.0.1" },
        exists,
      });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(!/Cannot find a Kubernetes configuration/.test(msg), "in-cluster was attempted");
  });
  await t.step("nothing at all: a clear error", () => {
    let msg = "";
    try {
      loadKubeConfig({ env: { HOME: `${dir}/nowhere` }, exists });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(
      /Cannot find a Kubernetes configuration: pass --kubeconfig, set \$KUBECONFIG/.test(msg),
      msg,
    );
  });
  await Deno.remove(dir, { recursive: true });
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
  await using p = await startProgram([
    "run",
    "--kubeconfig",
    kube.kubeconfigPath,
    "--metrics-bind-address",
    "0",
    "--health-probe-bind-address",
    "0",
  ]);
  const deadline = Date.now() + 30_000;
  while (!/Caches synced/.test(p.logs()) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert(/Caches synced/.test(p.logs()), p.logs());
  assertEquals(await p.stop("SIGTERM"), 0);
  assert(/"msg":"Stopped"/.test(p.logs()), p.logs());
});
