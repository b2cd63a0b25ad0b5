/**
 * `dbtether plan -f <manifests>`: what the controllers would do if the manifests were applied
 * now — per resource, the SQL and the Secret writes — without changing anything. It reads the
 * apiserver with get and list only, opens PostgreSQL sessions with
 * `default_transaction_read_only=on` and runs the controllers' own read steps and planners,
 * their SQL collected by a dry-run executor instead of sent. Exit 0: nothing would change; 2:
 * changes; 1: an error, or a resource the controller would refuse. docs/plan.md.
 */
import { parseArgs } from "node:util";
import { type Database, DatabaseKind } from "../crds/database.ts";
import { type DatabaseUser, DatabaseUserKind } from "../crds/database_user.ts";
import {
  type ClusterState,
  optionConsentOf,
  planDatabase,
  type UserLookup,
  wantsAdoption,
} from "../controllers/database/plan.ts";
import { databaseFailure } from "../controllers/database/reasons.ts";
import { type DryRun, PgExecutor } from "../controllers/postgres/execute.ts";
import { PoolRegistry } from "../controllers/postgres/registry.ts";
import { KubeClient, loadKubeConfig } from "../controllers/runtime/kube.ts";
import { adoptionConsent } from "../controllers/services/adoption.ts";
import { ClusterResolver } from "../controllers/services/resolver.ts";
import { PAUSE_ANNOTATION, pauseStateOf } from "../controllers/runtime/pause.ts";
import { DbtetherError, errorMessage, TerminalError } from "../lib/errors.ts";
import { crdSchema, withDefaults } from "./defaults.ts";
import { exitCode, renderJson, renderText, type ResourcePlan } from "./plan_render.ts";
import { isKind, type Manifest, merged, parseManifests, PlanSources } from "./plan_sources.ts";
import { finish, type PlanContext, planUserResource } from "./plan_user.ts";

export const PLAN_HELP = `Usage: dbtether plan -f PATH [-f PATH ...] [-n NAMESPACE] [-o text|json]

Prints what the controllers would do if the manifests were applied now: per resource, the SQL
statements (passwords redacted) and the Secrets written (data keys, never values), or "no
changes". Changes nothing: the apiserver is only read (get, list), PostgreSQL sessions are
read-only. Plans Database and DatabaseUser; other kinds are listed as not planned.

Exit status: 0 nothing would change, 2 changes, 1 an error or a resource the controller would
refuse (blocked, with its reason).

Options:
  -f, --filename PATH    a YAML/JSON file (multi-document), a directory of them, or - for stdin
  -n, --namespace NS     namespace of manifests that name none (default: the kubeconfig's, else default)
  -o, --output FORMAT    text (default) or json
      --kubeconfig PATH  kubeconfig to use; else $KUBECONFIG, ~/.kube/config, in-cluster

Examples:
  dbtether plan -f examples/database.yaml
  kustomize build overlays/prod | dbtether plan -f - -o json
`;

/** What the command is given by main.ts. */
export interface PlanCommandIo {
  env: Record<string, string>;
  stdout: { writeSync(b: Uint8Array): number };
  stderr: { writeSync(b: Uint8Array): number };
  exists: (path: string) => boolean;
  /** stdin's text, for `-f -`. */
  readStdin: () => Promise<string>;
}

/** Runs `dbtether plan`; returns the exit code. */
export async function planCommand(args: string[], io: PlanCommandIo): Promise<number> {
  const write = (w: PlanCommandIo["stdout"], s: string) => w.writeSync(new TextEncoder().encode(s));
  let o;
  try {
    o = parse(args);
  } catch (e) {
    write(io.stderr, `dbtether plan: ${(e as Error).message} (see dbtether plan --help)\n`);
    return 1;
  }
  if (o.help) {
    write(io.stdout, PLAN_HELP);
    return 0;
  }
  try {
    const plans = await plan(o, io);
    write(io.stdout, o.output === "json" ? renderJson(plans) : renderText(plans));
    return exitCode(plans);
  } catch (e) {
    write(io.stderr, `dbtether plan: ${errorMessage(e)}\n`);
    return 1;
  }
}

function parse(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      filename: { type: "string", short: "f", multiple: true },
      namespace: { type: "string", short: "n" },
      output: { type: "string", short: "o", default: "text" },
      kubeconfig: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return { ...values, files: [] as string[] };
  if (positionals.length) throw new Error(`Unexpected arguments ${positionals.join(" ")}`);
  if (values.output !== "text" && values.output !== "json") {
    throw new Error(`Invalid --output ${JSON.stringify(values.output)}: use text or json`);
  }
  if (!values.filename?.length) throw new Error("Missing -f: name the manifests to plan");
  return { ...values, files: values.filename };
}

/** The manifests of every -f, in order: a file, the .yaml/.yml/.json files of a directory, stdin. */
async function readAll(files: readonly string[], io: PlanCommandIo): Promise<Manifest[]> {
  const out: Manifest[] = [];
  for (const f of files) {
    if (f === "-") {
      out.push(...parseManifests(await io.readStdin(), "stdin"));
      continue;
    }
    let paths = [f];
    try {
      if ((await Deno.stat(f)).isDirectory) {
        paths = [];
        for await (const e of Deno.readDir(f)) {
          if (e.isFile && /\.(ya?ml|json)$/.test(e.name)) paths.push(`${f}/${e.name}`);
        }
        paths.sort();
      }
    } catch (e) {
      throw new TerminalError("InvalidManifest", `Cannot read ${f}: ${(e as Error).message}`);
    }
    for (const p of paths) out.push(...parseManifests(await Deno.readTextFile(p), p));
  }
  return out;
}

async function plan(
  o: ReturnType<typeof parse>,
  io: PlanCommandIo,
): Promise<ResourcePlan[]> {
  const manifests = await readAll(o.files, io);
  const { kc } = loadKubeConfig({
    ...(o.kubeconfig ? { path: o.kubeconfig } : {}),
    env: io.env,
    exists: io.exists,
  });
  const namespace = o.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ??
    "default";
  const client = new KubeClient(kc);
  const signal = new AbortController().signal;
  const sources = new PlanSources(client, manifests);
  await sources.load(signal);
  const pools = new PoolRegistry({ readOnly: true, applicationName: "dbtether-plan" });
  const resolver = new ClusterResolver({
    client,
    pools,
    env: io.env,
    clusters: {
      get: (name) => sources.clusters.find((c) => c.metadata.name === name),
      list: () => sources.clusters,
    },
  });
  const x: PlanContext = { client, resolver, sources, signal, planned: new Map() };
  try {
    const out: ResourcePlan[] = [];
    for (const m of manifests) out.push(await planOne(m, x, m.metadata.namespace ?? namespace));
    return out;
  } finally {
    await pools.close();
  }
}

async function planOne(m: Manifest, x: PlanContext, namespace: string): Promise<ResourcePlan> {
  const { name } = m.metadata;
  const base = { name, statements: [], secrets: [], notes: [] };
  const get = { namespace, name, signal: x.signal };
  try {
    if (isKind(m, "Database")) {
      const live = await x.sources.live<Database>(DatabaseKind, get);
      const db = merged(withDefaults(crdSchema(DatabaseKind.crd), m as Database), live, namespace);
      return handsOff(db, { kind: "Database", namespace }) ?? await planDatabaseResource(db, x);
    }
    if (isKind(m, "DatabaseUser")) {
      const live = await x.sources.live<DatabaseUser>(DatabaseUserKind, get);
      const user = merged(
        withDefaults(crdSchema(DatabaseUserKind.crd), m as DatabaseUser),
        live,
        namespace,
      );
      return handsOff(user, { kind: "DatabaseUser", namespace }) ??
        await planUserResource(user, x);
    }
  } catch (e) {
    // A refusal of the server or the apiserver for this resource; the others are still planned.
    if (!(e instanceof DbtetherError)) throw e;
    const kind = m.kind!;
    const blocked = { reason: e.reason, message: e.message };
    return { ...base, kind, namespace, result: "blocked", blocked };
  }
  const scoped = m.metadata.namespace ?? (m.kind === "DBCluster" ? undefined : namespace);
  return {
    ...base,
    kind: m.kind ?? "?",
    ...(scoped ? { namespace: scoped } : {}),
    result: "skipped",
  };
}

/**
 * A paused or observed resource: the controller would change nothing, so nothing is planned
 * (docs/design/pause_and_observe.md); undefined otherwise.
 */
function handsOff(
  o: Database | DatabaseUser,
  at: { kind: string; namespace: string },
): ResourcePlan | undefined {
  const note = pauseStateOf(o).kind === "paused"
    ? `paused (${PAUSE_ANNOTATION}): the controller changes nothing`
    : o.spec.managementPolicy === "Observe"
    ? "managementPolicy Observe: the controller changes nothing (see the InSync condition)"
    : undefined;
  if (note === undefined) return undefined;
  const { kind, namespace } = at;
  return {
    kind,
    namespace,
    name: o.metadata.name,
    result: "planned",
    statements: [],
    secrets: [],
    notes: [note],
  };
}

/** The live DatabaseUsers the Database's schemas name as owners, in its namespace. */
async function ownerUsers(db: Database, x: PlanContext): Promise<UserLookup> {
  const found = new Map<string, DatabaseUser>();
  for (const s of db.spec.schemas ?? []) {
    const name = s.owner?.databaseUser;
    if (name === undefined || found.has(name)) continue;
    const namespace = db.metadata.namespace ?? "default";
    const user = await x.sources.live<DatabaseUser>(DatabaseUserKind, {
      namespace,
      name,
      signal: x.signal,
    });
    if (user) found.set(name, user);
  }
  return (_namespace, name) => found.get(name);
}

/** Plans one Database (merged with the live object), as DatabaseReconciler would act. */
async function planDatabaseResource(db: Database, x: PlanContext): Promise<ResourcePlan> {
  const namespace = db.metadata.namespace ?? "default";
  const out: ResourcePlan = {
    kind: "Database",
    namespace,
    name: db.metadata.name,
    result: "planned",
    statements: [],
    secrets: [],
    notes: [],
  };
  let state: ClusterState;
  let pool;
  try {
    const resolved = await x.resolver.resolve(db.spec.clusterRef.name, {
      namespace,
      signal: x.signal,
    });
    pool = resolved.pool;
    state = {
      kind: "ready",
      adminRole: resolved.adminRole,
      options: optionConsentOf(resolved.cluster),
    };
    if (wantsAdoption(db)) {
      const consent = await adoptionConsent(x.client, {
        cluster: resolved.cluster,
        namespace,
        signal: x.signal,
      });
      state = { ...state, consent };
    }
  } catch (e) {
    const f = databaseFailure(e);
    state = { kind: "unavailable", reason: f.reason, message: f.message };
  }
  const plan = planDatabase(db, state, { users: await ownerUsers(db, x) });
  if (plan.blocked) {
    const { reason, message } = plan.blocked;
    return { ...out, result: "blocked", blocked: { reason, message } };
  }
  const dry: DryRun = { statements: [], notes: [], planned: x.planned };
  const exec = pool && new PgExecutor(pool, { signal: x.signal, dryRun: dry });
  for (const a of plan.actions) {
    if (a.kind === "ensureDatabase") {
      const result = await exec!.ensureDatabase(a.spec);
      dry.notes.push(...(result.waitingSchemas ?? []).map((w) => w.message));
    }
    if (a.kind === "ensureExtensions") {
      dry.notes.push(
        `Extensions (${a.extensions.join(", ")}) are created when missing at apply time; ` +
          "plan does not check them",
      );
    }
  }
  return finish(out, { dry });
}
