/**
 * dbtether: the composition root and command line. The only module that reads Deno.args and
 * Deno.env; it builds the clients, clock, logger and the shutdown signal, registers the
 * controllers and runs them.
 */
import { ConfigError, parseRunConfig, RUN_HELP } from "./config.ts";
import { systemClock } from "./lib/clock.ts";
import { errorMessage } from "./lib/errors.ts";
import { KubeEventRecorder } from "./controllers/runtime/events.ts";
import { OPEN_FENCE } from "./lib/fence.ts";
import { serveProbes } from "./controllers/runtime/http.ts";
import { KubeClient, loadKubeConfig } from "./controllers/runtime/kube.ts";
import { LeaderElector } from "./controllers/runtime/leader.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { Manager } from "./controllers/runtime/manager.ts";
import { Metrics } from "./controllers/runtime/metrics.ts";
import { type ControllerDeps, SharedInformers } from "./controllers/runtime/shared.ts";
import { GENERATED_DIR, renderAll } from "./crds/generate.ts";
import { VERSION } from "./version.ts";
import { registerControllers } from "./controllers/register.ts";

const HELP =
  `dbtether ${VERSION}: PostgreSQL databases, users, credentials and backups as Kubernetes resources.

Usage: dbtether <command> [flags]

Commands:
  run       run the controllers against a Kubernetes cluster
  backup    back up one database to object storage from a terminal
  restore   restore one database from object storage from a terminal
  backups   list scheduled Backups and the rule keeping each; apply retention by hand
  plan      print the SQL and Secret changes manifests would cause, changing nothing (exit 2: changes)
  crds      print the CustomResourceDefinitions (kubectl apply -f -)
  version   print the version

Run "dbtether <command> --help" for a command's flags and examples.

Examples:
  dbtether run --kubeconfig ~/.kube/config --log-format text
  dbtether crds | kubectl apply --server-side -f -
  dbtether backup --database orders --to s3://backups/orders/
  dbtether backups list -n shop -o json
  dbtether plan -f manifests/
`;

const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s));
const err = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s));

function fileExists(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

/** A directory a flag names must exist: a typo is reported at start, not at the first backup. */
function checkDirectory(path: string, flag: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    throw new Error(`Cannot use ${flag} ${path}: no such directory (pass a directory that exists)`);
  }
  if (!info.isDirectory) {
    throw new Error(`Cannot use ${flag} ${path}: it is not a directory (pass a directory)`);
  }
}

function podNamespace(): string | undefined {
  try {
    return Deno.readTextFileSync("/var/run/secrets/kubernetes.io/serviceaccount/namespace").trim();
  } catch {
    return undefined;
  }
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "dbtether";
  }
}

/** Waits until the API answers /version, or gives up with a clear message. */
async function checkApi(
  client: KubeClient,
  logger: Logger,
  timeoutMs: number,
  signal: AbortSignal,
) {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1;; attempt++) {
    try {
      const v = await client.request<{ gitVersion: string }>("GET", "/version");
      logger.info("Connected to Kubernetes", { server: client.server, version: v.gitVersion });
      return;
    } catch (e) {
      if (signal.aborted || Date.now() + 2000 > deadline) {
        throw new Error(`Cannot connect to Kubernetes at ${client.server}: ${errorMessage(e)}`);
      }
      logger.warn("Kubernetes API not reachable yet, retrying", {
        attempt,
        error: errorMessage(e),
      });
      await systemClock.sleep(Math.min(5000, 500 * 2 ** attempt), signal).catch(() => {});
    }
  }
}

async function run(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    out(RUN_HELP);
    return 0;
  }
  const env = Deno.env.toObject();
  const ns = podNamespace();
  const config = parseRunConfig({
    args,
    env,
    hostname: hostname(),
    ...(ns ? { podNamespace: ns } : {}),
  });
  for (const dir of config.pgToolsDirs) checkDirectory(dir, "--pg-tools-dir");
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  const { kc, source } = loadKubeConfig({
    ...(config.kubeconfig ? { path: config.kubeconfig } : {}),
    env,
    exists: fileExists,
  });
  logger.info("Starting dbtether", {
    version: VERSION,
    kubeconfig: source,
    namespaces: config.namespaces,
    // Also the lease holder's name and, as dbtether@<identity>/..., the application_name of
    // this replica's PostgreSQL sessions.
    identity: config.identity,
  });

  const stop = new AbortController();
  let signals = 0;
  const onSignal = (name: string) => () => {
    if (++signals > 1) {
      logger.warn("Second signal, exiting at once", { signal: name });
      Deno.exit(1);
    }
    logger.info("Shutting down", { signal: name });
    stop.abort(new Error(`Received ${name}`));
  };
  Deno.addSignalListener("SIGTERM", onSignal("SIGTERM"));
  Deno.addSignalListener("SIGINT", onSignal("SIGINT"));

  // The lease's own requests keep the fence open, so they do not pass it; everything else does.
  const leaseClient = new KubeClient(kc);
  const clock = systemClock;
  const metrics = new Metrics();
  metrics.buildInfo.set({ version: VERSION, deno: Deno.version.deno }, 1);
  const leader = config.leaderElect
    ? new LeaderElector({
      client: leaseClient,
      clock,
      logger: logger.with({ component: "leader-election" }),
      namespace: config.leaderElectionNamespace,
      name: config.leaderElectionId,
      identity: config.identity,
      leaseDurationMs: config.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs,
    })
    : undefined;
  const fence = leader?.fence ?? OPEN_FENCE;
  const client = new KubeClient(kc, { fence });
  const recorder = new KubeEventRecorder(client, { clock, logger, host: config.identity });
  const manager = new Manager({
    clock,
    logger,
    metrics,
    graceMs: config.gracefulShutdownMs,
    // Events of the drain are written while the lease is still ours.
    beforeRelease: () => recorder.flush(),
    ...(leader ? { leader } : {}),
  });
  // Ports first: a taken port is a mistake to report at once, before waiting for the API.
  const servers = serveProbes({
    metricsAddress: config.metricsAddress,
    healthAddress: config.healthAddress,
    metrics,
    probes: manager,
    logger,
  });
  const stopServers = () => Promise.all(servers.map((s) => s.shutdown()));
  try {
    await checkApi(leaseClient, logger, config.startupTimeoutMs, stop.signal);
  } catch (e) {
    await stopServers();
    throw e;
  }
  const deps: ControllerDeps = {
    client,
    fence,
    clock,
    logger,
    metrics,
    recorder,
    manager,
    informers: new SharedInformers({
      client,
      clock,
      logger,
      metrics,
      manager,
      namespaces: config.namespaces,
    }),
    workers: config.workers,
    backoffBaseMs: config.backoffBaseMs,
    backoffMaxMs: config.backoffMaxMs,
    resyncPeriodMs: config.resyncPeriodMs,
  };
  const release = registerControllers(deps, { config, env });

  // A quiet program still hears of an apiserver restart within HEARTBEAT_MS (kube.ts).
  const beating = new AbortController();
  const heartbeat = client.heartbeat(beating.signal, {
    logger: logger.with({ component: "kube-client" }),
  });
  let outcome;
  try {
    outcome = await manager.run(stop.signal);
  } finally {
    beating.abort();
    await heartbeat;
  }
  await release();
  await stopServers();
  if (outcome === "lost") {
    logger.error("Exiting: leadership lost");
    return 1;
  }
  logger.info("Stopped");
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      out(HELP);
      return cmd === undefined ? 2 : 0;
    case "version":
    case "--version":
      out(`dbtether ${VERSION} (deno ${Deno.version.deno})\n`);
      return 0;
    case "crds":
      if (rest.includes("--help")) {
        out(
          "Usage: dbtether crds\n\nPrints every CustomResourceDefinition as YAML.\n\nExample:\n  dbtether crds | kubectl apply --server-side -f -\n",
        );
        return 0;
      }
      out(renderAll().get(`${GENERATED_DIR}/all.yaml`) ?? "");
      return 0;
    case "run":
      return await run(rest);
    case "backup":
    case "restore": {
      const cli = await import("./backup/cli.ts");
      const fn = cmd === "backup" ? cli.backupCommand : cli.restoreCommand;
      return await fn(rest, { env: Deno.env.toObject(), stdout: Deno.stdout, stderr: Deno.stderr });
    }
    case "backups": {
      const { backupsCommand } = await import("./controllers/backup_schedule/cli.ts");
      return await backupsCommand(rest, {
        env: Deno.env.toObject(),
        stdout: Deno.stdout,
        stderr: Deno.stderr,
        exists: fileExists,
      });
    }
    case "plan": {
      const { planCommand } = await import("./cli/plan.ts");
      return await planCommand(rest, {
        env: Deno.env.toObject(),
        stdout: Deno.stdout,
        stderr: Deno.stderr,
        exists: fileExists,
        readStdin: () => new Response(Deno.stdin.readable).text(),
      });
    }
    default:
      err(`dbtether: unknown command "${cmd}"\n\n${HELP}`);
      return 2;
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    // A closed stdout (`dbtether crds | head`) is not an error worth a message.
    if (e instanceof Deno.errors.BrokenPipe) Deno.exit(0);
    err(`dbtether: ${errorMessage(e)}\n`);
    code = e instanceof ConfigError ? 2 : 1;
  }
  Deno.exit(code);
}
