/**
 * A real Kubernetes control plane for tests and the demo: etcd + kube-apiserver built from
 * their upstream Go modules (scripts/build-envtest.sh), on free loopback ports, with TLS and
 * client-certificate authentication (a CA we generate, an admin in system:masters) and RBAC.
 *
 * ```ts
 * await using kube = await startKube();
 * await kube.kubectl(["get", "namespaces"]);
 * ```
 */
import { freePort } from "./free_port.ts";
import { makeCa, signCert } from "./tls.ts";

const decoder = new TextDecoder();

export interface KubeEnv extends AsyncDisposable {
  readonly server: string;
  readonly kubeconfigPath: string;
  readonly dir: string;
  readonly binDir: string;
  /** Runs the built kubectl against this apiserver. */
  kubectl(
    args: string[],
    opts?: { stdin?: string; check?: boolean },
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Applies YAML/JSON given as text. */
  apply(manifest: string): Promise<void>;
  /** Kills kube-apiserver (etcd keeps running). */
  stopApiserver(): Promise<void>;
  /** Starts kube-apiserver again on the same port and waits until ready. */
  startApiserver(): Promise<void>;
  /** Writes a kubeconfig for a client certificate with `user`/`groups` (for RBAC tests). */
  userKubeconfig(user: string, groups?: string[]): Promise<string>;
  stop(): Promise<void>;
}

export interface StartKubeOptions {
  /** Install the project's CRDs from crds/generated (default true). */
  crds?: boolean;
  /** Extra kube-apiserver flags. */
  apiserverArgs?: string[];
  /** Keep files under this directory instead of a fresh temp dir (the dev environment). */
  dir?: string;
  /** Fixed port (the dev environment keeps it stable). */
  port?: number;
}

const repoRoot = new URL("../../", import.meta.url).pathname;

async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; stdin?: string; env?: Record<string, string> } = {},
) {
  const p = new Deno.Command(cmd, {
    args,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    stdin: opts.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await p.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function must(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  }
  return r.stdout;
}

/** Builds (first time) or finds the envtest binaries; returns their directory. */
export async function envtestBinaries(): Promise<string> {
  const out = await must("bash", [`${repoRoot}scripts/build-envtest.sh`]);
  return out.trim().split("\n").pop()!;
}

async function makeCerts(dir: string): Promise<void> {
  const o = (args: string[]) => must("openssl", args, { cwd: dir });
  await makeCa(dir, "dbtether-test-ca");
  await signCert(dir, {
    file: "server",
    subj: "/CN=kube-apiserver",
    ext: [
      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc",
      "extendedKeyUsage=serverAuth",
      "keyUsage=critical,digitalSignature",
    ],
  });
  await clientCert(dir, "admin", "admin", ["system:masters"]);
  await o(["genrsa", "-out", "sa.key", "2048"]);
  await o(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

function clientCert(dir: string, file: string, user: string, groups: string[]): Promise<void> {
  return signCert(dir, {
    file,
    subj: `/CN=${user}` + groups.map((g) => `/O=${g}`).join(""),
    ext: ["extendedKeyUsage=clientAuth", "keyUsage=critical,digitalSignature"],
  });
}

async function kubeconfig(dir: string, server: string, file: string): Promise<string> {
  const b64 = async (f: string) => btoa(await Deno.readTextFile(`${dir}/${f}`));
  const text = `apiVersion: v1
kind: Config
clusters:
- name: dbtether-test
  cluster:
    server: ${server}
    certificate-authority-data: ${await b64("ca.crt")}
users:
- name: ${file}
  user:
    client-certificate-data: ${await b64(`${file}.crt`)}
    client-key-data: ${await b64(`${file}.key`)}
contexts:
- name: dbtether-test
  context:
    cluster: dbtether-test
    user: ${file}
    namespace: default
current-context: dbtether-test
`;
  const path = `${dir}/${file}.kubeconfig`;
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  return path;
}

async function waitFor(
  what: string,
  fn: () => Promise<boolean>,
  timeoutMs: number,
  proc?: Deno.ChildProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  proc?.status.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${what} exited before becoming ready`);
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} was not ready within ${timeoutMs} ms`);
}

/** Starts etcd and kube-apiserver; the returned env stops both and removes its files. */
export async function startKube(opts: StartKubeOptions = {}): Promise<KubeEnv> {
  const binDir = await envtestBinaries();
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "dbtether-kube-" });
  await Deno.mkdir(dir, { recursive: true });
  const logOut = async (name: string, stream: ReadableStream<Uint8Array>) => {
    const file = await Deno.open(`${dir}/${name}.log`, { create: true, append: true, write: true });
    await stream.pipeTo(file.writable).catch(() => {});
  };
  if (!(await exists(`${dir}/ca.crt`))) await makeCerts(dir);

  const etcdPort = freePort(), peerPort = freePort();
  const etcd = new Deno.Command(`${binDir}/etcd`, {
    args: [
      "--name=default",
      `--data-dir=${dir}/etcd`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const etcdLogs = Promise.all([logOut("etcd", etcd.stdout), logOut("etcd.err", etcd.stderr)]);
  await waitFor(
    "etcd",
    async () => (await fetch(`http://127.0.0.1:${etcdPort}/health`)).ok,
    30_000,
    etcd,
  );

  const port = opts.port ?? freePort();
  const server = `https://127.0.0.1:${port}`;
  const adminKubeconfig = await kubeconfig(dir, server, "admin");
  let apiserver: Deno.ChildProcess | undefined;
  let apiLogs: Promise<unknown> = Promise.resolve();

  const startApiserver = async () => {
    apiserver = new Deno.Command(`${binDir}/kube-apiserver`, {
      args: [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        `--secure-port=${port}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--cert-dir=${dir}/apiserver-certs`,
        `--tls-cert-file=${dir}/server.crt`,
        `--tls-private-key-file=${dir}/server.key`,
        `--client-ca-file=${dir}/ca.crt`,
        `--service-account-key-file=${dir}/sa.pub`,
        `--service-account-signing-key-file=${dir}/sa.key`,
        "--service-account-issuer=https://kubernetes.default.svc",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        "--disable-admission-plugins=ServiceAccount",
        "--enable-priority-and-fairness=false",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        "--v=0",
        ...(opts.apiserverArgs ?? []),
      ],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    apiLogs = Promise.all([
      logOut("kube-apiserver", apiserver.stdout),
      logOut("kube-apiserver.err", apiserver.stderr),
    ]);
    await waitFor(
      "kube-apiserver",
      async () => {
        const r = await run(`${binDir}/kubectl`, [
          "--kubeconfig",
          adminKubeconfig,
          "get",
          "--raw",
          "/readyz",
        ]);
        return r.code === 0;
      },
      90_000,
      apiserver,
    );
  };

  const stopApiserver = async () => {
    if (!apiserver) return;
    try {
      apiserver.kill("SIGKILL");
    } catch { /* already gone */ }
    await apiserver.status;
    await apiLogs;
    apiserver = undefined;
  };

  const kubectl = async (args: string[], o: { stdin?: string; check?: boolean } = {}) => {
    const r = await run(
      `${binDir}/kubectl`,
      ["--kubeconfig", adminKubeconfig, ...args],
      o.stdin !== undefined ? { stdin: o.stdin } : {},
    );
    if (o.check && r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}`);
    return r;
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stopApiserver();
    try {
      etcd.kill("SIGKILL");
    } catch { /* already gone */ }
    await etcd.status;
    await etcdLogs;
    if (!opts.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  try {
    await startApiserver();
    // The default namespace and RBAC bootstrap arrive shortly after readiness.
    await waitFor(
      "default namespace",
      async () => (await kubectl(["get", "namespace", "default"])).code === 0,
      30_000,
    );
    if (opts.crds ?? true) await installCrds(kubectl);
  } catch (e) {
    const tail = await Deno.readTextFile(`${dir}/kube-apiserver.err.log`).catch(() => "");
    await stop();
    throw new Error(
      `${(e as Error).message}\n--- kube-apiserver log tail ---\n${tail.slice(-3000)}`,
    );
  }

  return {
    server,
    kubeconfigPath: adminKubeconfig,
    dir,
    binDir,
    kubectl,
    async apply(manifest: string) {
      await kubectl(["apply", "-f", "-"], { stdin: manifest, check: true });
    },
    stopApiserver,
    startApiserver,
    async userKubeconfig(user: string, groups: string[] = []) {
      const file = `user-${user.replace(/[^a-z0-9-]/gi, "_")}`;
      await clientCert(dir, file, user, groups);
      return await kubeconfig(dir, server, file);
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function installCrds(kubectl: KubeEnv["kubectl"]): Promise<void> {
  const crdDir = `${repoRoot}crds/generated`;
  const files: string[] = [];
  try {
    for await (const e of Deno.readDir(crdDir)) {
      if (e.isFile && e.name.endsWith(".yaml") && e.name !== "all.yaml") {
        files.push(`${crdDir}/${e.name}`);
      }
    }
  } catch { /* no CRDs generated yet */ }
  if (!files.length) return;
  files.sort();
  const args = ["apply", "--server-side", "--force-conflicts"];
  for (const f of files) args.push("-f", f);
  await kubectl(args, { check: true });
  await waitCrdsEstablished(kubectl);
}

/** Waits until every CRD of ours (label app.kubernetes.io/part-of=dbtether) is Established. */
export async function waitCrdsEstablished(kubectl: KubeEnv["kubectl"]): Promise<void> {
  await kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "crd",
    "-l",
    "app.kubernetes.io/part-of=dbtether",
  ], { check: true });
}

/** Whether anything exists at `p`. */
export async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}
