/**
 * `dbtether plan` for a DatabaseUser: the controller's own read step (observe.ts) and planner
 * (plan.ts, secret_plan.ts), then its passes played in memory — a credentials record write is
 * kept as the next pass's record, SQL goes to a dry-run executor on a read-only pool — until
 * the pass that converges. Statements the passes repeat (the server did not change in between)
 * are listed once.
 */
import type { DatabaseUser } from "../crds/database_user.ts";
import { beginPending, ensureRoles } from "../controllers/database_user/credentials.ts";
import type { CredentialsContext } from "../controllers/database_user/credentials.ts";
import {
  observeUser,
  ownedSecrets,
  secretEndpoints,
  secretReaders,
  userContext,
} from "../controllers/database_user/observe.ts";
import { type ObservedUser, planTargets, planUser } from "../controllers/database_user/plan.ts";
import type { UserAction } from "../controllers/database_user/plan.ts";
import type { Secret } from "../controllers/database_user/secret.ts";
import { databaseEntries, FINALIZER } from "../controllers/database_user/spec.ts";
import {
  commitPending,
  type CredentialsState,
  stateSecret,
} from "../controllers/database_user/state.ts";
import { readyFailure } from "../controllers/database_user/status.ts";
import { type DryRun, PgExecutor } from "../controllers/postgres/execute.ts";
import { redact } from "../controllers/postgres/statements.ts";
import type { ClusterResolver } from "../controllers/services/resolver.ts";
import type { KubeClient } from "../controllers/runtime/kube.ts";
import { kubeTime } from "../lib/time.ts";
import type { ResourcePlan, SecretPlan } from "./plan_render.ts";
import type { PlanSources } from "./plan_sources.ts";

/** What planning one resource needs. */
export interface PlanContext {
  client: KubeClient;
  resolver: ClusterResolver;
  sources: PlanSources;
  /** The roles the plan's Databases would create (see DryRun.planned). */
  planned: NonNullable<DryRun["planned"]>;
  signal: AbortSignal;
}

/** More passes than a new user needs (finalizer, record, set, converge). */
const MAX_PASSES = 6;

/** Plans one DatabaseUser (already merged with the live object). */
export async function planUserResource(user: DatabaseUser, x: PlanContext): Promise<ResourcePlan> {
  const ns = user.metadata.namespace ?? "default";
  const out: ResourcePlan = {
    kind: "DatabaseUser",
    namespace: ns,
    name: user.metadata.name,
    result: "planned",
    statements: [],
    secrets: [],
    notes: [],
  };
  const lookup = new Map<string, Awaited<ReturnType<PlanSources["database"]>>>();
  for (const e of databaseEntries(user)) {
    lookup.set(`${e.namespace}/${e.name}`, await x.sources.database(e.namespace, e.name, x.signal));
  }
  const checked = planTargets(user, (e) => lookup.get(`${e.namespace}/${e.name}`));
  if (checked.kind === "blocked") return blocked(out, checked.blocked);
  let resolved;
  try {
    resolved = await x.resolver.resolve(checked.clusterName, { namespace: ns, signal: x.signal });
  } catch (e) {
    return blocked(out, readyFailure(e));
  }
  const dry: DryRun = { statements: [], notes: [], planned: x.planned };
  const c = await userContext(user, {
    targets: checked.targets,
    resolved,
    client: x.client,
    exec: new PgExecutor(resolved.pool, { signal: x.signal, dryRun: dry }),
    now: () => Date.now(),
    signal: x.signal,
  });
  const observed = await observeUser(c, {
    clusterName: checked.clusterName,
    server: secretEndpoints(resolved),
    owned: ownedSecrets(user, await x.sources.secrets(ns, x.signal)),
    readers: (name) => secretReaders({ namespace: ns, name }, x.sources),
    cluster: resolved.cluster,
    now: Date.now(),
  });
  const secrets = new Map<string, SecretPlan>();
  const stored = observed.record !== undefined;
  let o: ObservedUser = observed;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const plan = planUser(o);
    if (plan.kind === "blocked") return finish(out, { dry, secrets, blocked: plan.blocked });
    let record = o.record;
    for (const a of plan.actions) {
      const state = await simulate(a, c, { secrets, stored });
      if (state) {
        record = stateSecret(state, { owner: c.user, ownerRef: c.ownerRef, existing: record });
      }
    }
    if (plan.kind === "converge") {
      return finish(out, { dry, secrets, ...(plan.blocked ? { blocked: plan.blocked } : {}) });
    }
    // The next pass reads back what this one wrote; an import is not tried twice.
    const { imported: _imported, ...rest } = o;
    o = { ...rest, user: c.user, record };
  }
  throw new Error(`Cannot plan DatabaseUser ${ns}/${user.metadata.name}: it did not converge`);
}

/**
 * Plays one action: SQL into the dry run, Secret writes into `secrets`. Returns the record the
 * action would write, if it writes one.
 */
async function simulate(
  a: UserAction,
  c: CredentialsContext,
  o: { secrets: Map<string, SecretPlan>; stored: boolean },
): Promise<CredentialsState | undefined> {
  const record = (state: CredentialsState) => {
    const s = stateSecret(state, { owner: c.user, ownerRef: c.ownerRef, existing: undefined });
    o.secrets.set(s.metadata.name, {
      action: o.stored ? "update" : "create",
      name: s.metadata.name,
      keys: keysOf(s),
    });
    return state;
  };
  switch (a.kind) {
    case "addFinalizer": {
      const finalizers = [...(c.user.metadata.finalizers ?? []), FINALIZER];
      c.user = { ...c.user, metadata: { ...c.user.metadata, finalizers } };
      return undefined;
    }
    case "recordImported":
    case "recordSecrets":
      return record(a.state);
    case "recordPending":
      return record(beginPending(c, a.state, a));
    case "applyPending": {
      // As applyPending, without the login that verifies it: the password was never set.
      const at = Math.floor(Date.now() / 1000) * 1000;
      await ensureRoles(c, a.state, {
        role: a.state.pending.role,
        password: a.state.pending.password,
        at,
      });
      return record(commitPending(a.state, kubeTime(at)));
    }
    case "ensureRoles":
      await ensureRoles(c, a.state);
      return undefined;
    case "writeSecrets":
      for (const w of a.changes) {
        // A delivered copy is shown as <namespace>/<name>.
        const own = c.user.metadata.namespace;
        const where = (ns: string | undefined, name: string) =>
          ns && ns !== own ? `${ns}/${name}` : name;
        if (w.kind === "delete") {
          const name = where(w.namespace, w.name);
          o.secrets.set(name, { action: "delete", name, keys: [] });
        } else {
          const name = where(w.secret.metadata.namespace, w.secret.metadata.name);
          o.secrets.set(name, {
            action: w.create ? "create" : "update",
            name,
            keys: keysOf(w.secret),
          });
        }
      }
      return undefined;
  }
}

function keysOf(s: Secret): string[] {
  return [...new Set([...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})])].sort();
}

function blocked(out: ResourcePlan, b: { reason: string; message: string }): ResourcePlan {
  return { ...out, result: "blocked", blocked: { reason: b.reason, message: b.message } };
}

/** The statements of every pass, each once (the server did not change between passes). */
export function finish(
  out: ResourcePlan,
  o: {
    dry: DryRun;
    secrets?: Map<string, SecretPlan>;
    blocked?: { reason: string; message: string };
  },
): ResourcePlan {
  const seen = new Set<string>();
  const statements: ResourcePlan["statements"] = [];
  for (const s of o.dry.statements) {
    for (const sql of [s.sql, ...(s.together ?? [])]) {
      // Two verifiers of one password differ (salt); with passwords left out they are equal.
      const key = JSON.stringify([s.database ?? null, redact(sql)]);
      if (seen.has(key)) continue;
      seen.add(key);
      statements.push({ sql, ...(s.database === undefined ? {} : { database: s.database }) });
    }
  }
  const res: ResourcePlan = {
    ...out,
    statements,
    secrets: [...(o.secrets?.values() ?? [])],
    notes: [...new Set(o.dry.notes)],
  };
  return o.blocked ? blocked(res, o.blocked) : res;
}
