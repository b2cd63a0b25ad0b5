/**
 * The whole world for an integration test: a real apiserver (CRDs installed), a real
 * PostgreSQL with a non-superuser admin, and the real `dbtether run` as a subprocess with the
 * binary's permission flags. Each part is optional; everything stops on dispose.
 *
 * ```ts
 * await using env = await startEnv({ pg: true, program: true });
 * const ns = await env.namespace("users");
 * await env.kube.apply(env.clusterManifest("test-pg"));
 * ```
 */
import { KubeClient, loadKubeConfig } from "../../controllers/runtime/kube.ts";
import { type KubeEnv, startKube, type StartKubeOptions } from "./kube.ts";
import { type PgServer, startPostgres, type StartPostgresOptions } from "./postgres.ts";
import { pgToolArgs, type RunningProgram, startProgram } from "./program.ts";
import { budget } from "./timeouts.ts";
import { waitFor } from "./wait.ts";

export interface TestEnv extends AsyncDisposable {
  readonly kube: KubeEnv;
  readonly client: KubeClient;
  /** Present when started with `pg: true`. */
  readonly pg: PgServer;
  /** The running program, when started with `program: true` (or after startProgram()). */
  readonly program: RunningProgram | undefined;
  /** Creates a namespace with a unique suffix; returns its name. */
  namespace(prefix: string, labels?: Record<string, string>): Promise<string>;
  /**
   * A DBCluster named `name` pointing at the test server, plus its admin Secret, as YAML. The
   * server speaks TLS, so sslMode is the default (require); `disable` only for a plaintext server.
   */
  clusterManifest(name: string, opts?: { secretNamespace?: string; extraSpec?: string }): string;
  /** Starts (or restarts) `dbtether run` with the configured arguments (plus extra ones). */
  startProgram(extraArgs?: string[], extraEnv?: Record<string, string>): Promise<RunningProgram>;
  /** Stops the program with a signal (default SIGTERM); returns its exit code. */
  killProgram(signal?: Deno.Signal): Promise<number | undefined>;
  /** Stops and starts the program again. */
  restartProgram(signal?: Deno.Signal): Promise<RunningProgram>;
  /** kubectl get -o json of one object (undefined when missing). */
  getJson<T = Record<string, unknown>>(
    kind: string,
    name: string,
    namespace?: string,
  ): Promise<T | undefined>;
  /** Waits until `.status.phase` of the object equals `phase`; returns the object. */
  waitPhase(
    kind: string,
    name: string,
    phase: string,
    opts?: { namespace?: string; timeoutMs?: number },
  ): Promise<Record<string, unknown>>;
}

export interface StartEnvOptions {
  /** Options of the apiserver (e.g. `crds: false` for a test that installs them itself). */
  kube?: StartKubeOptions;
  pg?: boolean | StartPostgresOptions;
  program?: boolean;
  /** Extra `dbtether run` flags (the kubeconfig and probe addresses are set for you). */
  programArgs?: string[];
  /** Extra environment of the program (only PATH and HOME are inherited). */
  programEnv?: Record<string, string>;
}

let counter = 0;

/** `dbtether run` against `kubeconfig` with the metrics and health-probe servers on port 0. */
export function runArgs(kubeconfig: string): string[] {
  return [
    "run",
    "--kubeconfig",
    kubeconfig,
    "--metrics-bind-address",
    "0",
    "--health-probe-bind-address",
    "0",
  ];
}

/**
 * `runArgs` plus what the tests read and wait for: JSON debug logs, a short retry backoff
 * (200ms, at most `backoffMax`, default 5s), and the client tools of the test servers' majors.
 */
export function testRunArgs(kubeconfig: string, o: { backoffMax?: string } = {}): string[] {
  return [
    ...runArgs(kubeconfig),
    "--log-format",
    "json",
    "--log-level",
    "debug",
    "--backoff-base",
    "200ms",
    "--backoff-max",
    o.backoffMax ?? "5s",
    ...pgToolArgs(),
  ];
}

export async function startEnv(opts: StartEnvOptions = {}): Promise<TestEnv> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const dispose = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    const kube = await startKube(opts.kube);
    cleanups.push(() => kube.stop());
    const pg = opts.pg
      ? await startPostgres(typeof opts.pg === "object" ? opts.pg : {})
      : undefined;
    if (pg) cleanups.push(async () => await pg[Symbol.asyncDispose]());
    const client = new KubeClient(
      loadKubeConfig({ path: kube.kubeconfigPath, env: {}, exists: () => true }).kc,
    );
    let program: RunningProgram | undefined;
    cleanups.push(async () => {
      await program?.stop("SIGKILL");
    });

    const start = async (extra: string[] = [], extraEnv: Record<string, string> = {}) => {
      program = await startProgram([
        ...testRunArgs(kube.kubeconfigPath),
        ...(opts.programArgs ?? []),
        ...extra,
      ], { env: { ...opts.programEnv, ...extraEnv } });
      return program;
    };
    if (opts.program) await start();

    const getJson = async <T>(
      kind: string,
      name: string,
      namespace?: string,
    ): Promise<T | undefined> => {
      const r = await kube.kubectl([
        "get",
        kind,
        name,
        "-o",
        "json",
        ...(namespace ? ["-n", namespace] : []),
      ]);
      if (r.code !== 0) return undefined;
      return JSON.parse(r.stdout) as T;
    };

    const env: TestEnv = {
      kube,
      client,
      get pg(): PgServer {
        if (!pg) throw new Error("startEnv was called without pg: true");
        return pg;
      },
      get program() {
        return program;
      },
      async namespace(prefix, labels = {}) {
        const name = `${prefix}-${Date.now().toString(36)}-${++counter}`.slice(0, 63);
        const lbl = Object.entries(labels).map(([k, v]) => `    ${k}: "${v}"`).join("\n");
        await kube.apply(
          `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n${
            lbl ? `  labels:\n${lbl}\n` : ""
          }`,
        );
        return name;
      },
      clusterManifest(name, o = {}) {
        if (!pg) {
          throw new Error("clusterManifest needs a PostgreSQL server: startEnv({ pg: true })");
        }
        const ns = o.secretNamespace ?? "default";
        return `apiVersion: v1
kind: Secret
metadata:
  name: ${name}-admin
  namespace: ${ns}
type: Opaque
stringData:
  username: ${pg.admin.user}
  password: "${pg.admin.password}"
---
apiVersion: dbtether.io/v1alpha1
kind: DBCluster
metadata:
  name: ${name}
spec:
  endpoint: ${pg.host}
  port: ${pg.port}
${pg.caFile ? "" : "  sslMode: disable\n"}  credentialsSecretRef:
    name: ${name}-admin
    namespace: ${ns}
${o.extraSpec ?? ""}`;
      },
      startProgram: start,
      async killProgram(signal: Deno.Signal = "SIGTERM") {
        const p = program;
        program = undefined;
        return await p?.stop(signal);
      },
      async restartProgram(signal: Deno.Signal = "SIGTERM") {
        await env.killProgram(signal);
        return await start();
      },
      getJson,
      async waitPhase(kind, name, phase, o = {}) {
        // The status last seen goes into the timeout's message: a CI log shows where it stuck.
        let seen: unknown;
        try {
          return await waitFor(`${kind} ${name} to reach phase ${phase}`, async () => {
            const obj = await getJson<{ status?: { phase?: string } }>(kind, name, o.namespace);
            seen = obj?.status;
            return obj?.status?.phase === phase ? obj as Record<string, unknown> : undefined;
          }, { timeoutMs: o.timeoutMs ?? budget("ready"), intervalMs: 250 });
        } catch (e) {
          throw new Error(`${(e as Error).message}; its status: ${JSON.stringify(seen ?? null)}`);
        }
      },
      [Symbol.asyncDispose]: dispose,
    };
    return env;
  } catch (e) {
    await dispose();
    throw e;
  }
}
