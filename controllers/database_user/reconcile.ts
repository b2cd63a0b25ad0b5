/**
 * The DatabaseUser controller's shell. Each pass gathers (the user, its Databases, its Secrets
 * and credentials record), plans (plan.ts: pure), executes the actions (roles and grants through
 * PgExecutor, the password steps through credentials.ts, Secrets), and writes status (status.ts)
 * only when it changed. A credentials step ends the pass with an immediate requeue, so the next
 * pass plans from the record as stored.
 */
import { type DatabaseUser, DatabaseUserKind } from "../../crds/database_user.ts";
import type { Services } from "../services/services.ts";
import { PgExecutor } from "../postgres/execute.ts";
import type { Controller, ReconcileContext, Result } from "../runtime/controller.ts";
import { done, requeueAfter } from "../runtime/controller.ts";
import { ConflictError, RetryableError, TerminalError } from "../../lib/errors.ts";
import { SecretResource } from "../runtime/kube.ts";
import { SecretReads } from "../services/secret_reads.ts";
import { addFinalizer, removeFinalizer, updateStatus } from "../runtime/objects.ts";
import { type Reconciler, startController } from "../runtime/reconciler.ts";
import type { ControllerDeps } from "../runtime/shared.ts";
import {
  applyPending,
  beginPending,
  type CredentialsContext,
  ensureRoles,
  writeState,
} from "./credentials.ts";
import {
  type Blocked,
  type DeletionAction,
  type PendingState,
  planDeletion,
  planTargets,
  planUser,
  type RoleDeletionAction,
  type UserAction,
  type UserOutcome,
} from "./plan.ts";
import {
  observeUser,
  ownedSecrets,
  secretEndpoints,
  secretReaders,
  userContext,
} from "./observe.ts";
import { isCopyOf, SOURCE_UID_LABEL } from "./delivery.ts";
import { untilRotation } from "./rotation.ts";
import type { Secret } from "./secret.ts";
import type { CredentialsState } from "./state.ts";
import type { SecretChange } from "./secret_plan.ts";
import { FINALIZER } from "./spec.ts";
import { databaseEntries, usernameOf } from "./spec.ts";
import { computeStatus, type ReadyFailure, readyFailure, type StatusInput } from "./status.ts";
import {
  copiesLabelled,
  databaseUserWatches,
  type SecretMeta,
  secretsOwnedBy,
  type UserInformers,
  userInformers,
} from "./watches.ts";
import { userDrift, userObserves } from "./observe_drift.ts";
import { type Drift, inSync, inSyncCondition, releaseObserved } from "../services/drift.ts";
import { pauseGate } from "../runtime/pause.ts";

/** How a live user's pass ended. */
export type Pass =
  /** A credentials step ran: look again at once. */
  | { kind: "step" }
  | { kind: "blocked"; blocked: Blocked }
  | { kind: "ready"; outcome: UserOutcome }
  /** managementPolicy Observe: what differs; nothing was changed. */
  | { kind: "observed"; drift: Drift; clusterName: string };

/** What the actions of one pass share: the credentials context and the record as stored. */
interface Run {
  c: CredentialsContext;
  record: Secret | undefined;
}

/** Waits that an informer event ends (databaseUserWatches maps Database events to users). */
const WATCHED_WAITS: ReadonlySet<string> = new Set(["DatabaseNotFound", "DatabaseNotReady"]);
/** How long such a wait goes without a look if no event comes (it should never be needed). */
const WAIT_RECHECK_MS = 5 * 60_000;

/** Reconciles DatabaseUsers: roles, grants, passwords and Secrets. */
export class DatabaseUserReconciler implements Reconciler {
  readonly #deps: ControllerDeps;
  readonly #services: Services;
  readonly #i: UserInformers;
  /**
   * The user's Secrets, read once per resourceVersion of the informer whose events bring the
   * user back (its managed-by Secrets): another informer could still show a Secret this one
   * has seen deleted, and the pass that event started would then find it.
   */
  readonly #reads: SecretReads;

  constructor(deps: ControllerDeps, services: Services) {
    this.#deps = deps;
    this.#services = services;
    this.#i = userInformers(deps.informers);
    this.#reads = new SecretReads({ client: deps.client, informer: this.#i.secrets });
  }

  /** Whether a Secret event is the echo of this reconciler's own write (SecretReads.echo). */
  secretEcho(s: SecretMeta, wake: () => void): boolean {
    return this.#reads.echo(s as Secret, wake);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<Result> {
    const user = this.#i.users.get(key);
    if (!user) return done;
    const gate = { resource: DatabaseUserKind, object: user, signal: ctx.signal };
    if ((await pauseGate(this.#deps, gate)).paused) return done;
    if (user.metadata.deletionTimestamp) return await this.finalize(user, ctx);
    let pass: Pass;
    try {
      pass = await this.converge(user, ctx);
    } catch (e) {
      // A stale copy of an object we wrote: look again, there is nothing to report.
      if (e instanceof ConflictError) throw e;
      return await this.#fail(user, readyFailure(e), { ctx, cause: e });
    }
    if (pass.kind === "step") return requeueAfter(0);
    if (pass.kind === "observed") return await this.#observed(user, pass, ctx);
    if (pass.kind === "blocked") {
      if (WATCHED_WAITS.has(pass.blocked.reason)) return await this.#wait(user, pass.blocked, ctx);
      return await this.#fail(user, pass.blocked, { ctx });
    }
    return await this.#ready(user, pass.outcome, ctx);
  }

  /**
   * Waiting for a Database that the Database watch reports on (created, Ready, deleted): the
   * status says why, and the watch brings the user back, not a backoff timer that would re-read
   * the Database again and again while it is being created. The long requeue is a safety net only.
   */
  async #wait(user: DatabaseUser, f: ReadyFailure, ctx: ReconcileContext): Promise<Result> {
    if (user.status?.conditions?.find((x) => x.type === "Ready")?.reason !== f.reason) {
      this.#deps.recorder.emit(user, "Warning", f.reason, f.message);
    }
    await this.#writeStatus(user, { ready: f }, ctx);
    return requeueAfter(WAIT_RECHECK_MS);
  }

  /** One pass of a live user: gather, plan, execute. Throws what an action threw. */
  async converge(user: DatabaseUser, ctx: ReconcileContext): Promise<Pass> {
    const checked = planTargets(user, (e) => this.#i.databases.get(`${e.namespace}/${e.name}`));
    if (checked.kind === "blocked") return checked;
    const ns = user.metadata.namespace;
    const resolved = await this.#services.resolver.resolve(checked.clusterName, {
      ...(ns ? { namespace: ns } : {}),
      signal: ctx.signal,
    });
    const { client, clock } = this.#deps;
    if (userObserves(user)) {
      const drift = await userDrift(user, {
        targets: checked.targets,
        resolved,
        client,
        signal: ctx.signal,
      });
      return { kind: "observed", drift, clusterName: checked.clusterName };
    }
    const c = await userContext(user, {
      targets: checked.targets,
      resolved,
      client,
      exec: new PgExecutor(resolved.pool, { logger: ctx.logger, signal: ctx.signal }),
      now: () => clock.now(),
      signal: ctx.signal,
    });
    const observed = await observeUser(c, {
      clusterName: checked.clusterName,
      server: secretEndpoints(resolved),
      owned: this.#owned(user),
      readers: (name) => this.#readers(ns, name),
      cluster: resolved.cluster,
      copies: copiesLabelled(this.#i, user.metadata.uid) as Secret[],
      now: clock.now(),
      reads: this.#reads,
    });
    const plan = planUser(observed);
    if (plan.kind === "blocked") return plan;
    const run: Run = { c, record: observed.record };
    for (const action of plan.actions) await this.#act(action, run);
    if (plan.kind === "credentials") return { kind: "step" };
    if (plan.blocked) return { kind: "blocked", blocked: plan.blocked };
    return { kind: "ready", outcome: plan.outcome };
  }

  /** Writes and deletes application Secrets of a user in `namespace`. */
  async writeSecrets(
    namespace: string | undefined,
    changes: readonly SecretChange[],
    o: { signal: AbortSignal },
  ): Promise<void> {
    const { client } = this.#deps;
    const { signal } = o;
    const reads = this.#reads;
    for (const a of changes) {
      if (a.kind === "delete") {
        const ns = a.namespace ?? namespace;
        await client.delete(SecretResource, { signal, namespace: ns, name: a.name, uid: a.uid });
        reads.forget({ namespace: ns ?? "default", name: a.name });
        continue;
      }
      // A delivered copy names its own namespace; the user's Secrets are in the user's.
      const ns = a.secret.metadata.namespace ?? namespace;
      if (a.create) {
        await reads.write(() =>
          client.create<Secret>(SecretResource, { signal, namespace: ns, body: a.secret })
        );
      } else {
        const name = a.secret.metadata.name;
        await reads.write(() =>
          client.replace<Secret>(SecretResource, { signal, namespace: ns, name, body: a.secret })
        );
      }
    }
  }

  /**
   * Deletion: retain, drop or release the roles (planDeletion), delete the Secrets, drop the
   * finalizer.
   */
  async finalize(user: DatabaseUser, ctx: ReconcileContext): Promise<Result> {
    if (userObserves(user)) return await this.#releaseObserved(user, ctx);
    const actions = planDeletion(user, {
      databases: databaseEntries(user).map((e) =>
        this.#i.databases.get(`${e.namespace}/${e.name}`)
      ),
      owned: [...this.#owned(user), ...await this.#copies(user, ctx.signal)],
    });
    let exec: PgExecutor | undefined;
    for (const a of actions) {
      if ("clusterName" in a) {
        // Every role action names the same DBCluster; it is resolved once, when first needed.
        exec ??= await this.#executor(a.clusterName, ctx);
        await releaseRole(exec, a);
      } else await this.#finalizeStep(user, a, ctx);
    }
    return done;
  }

  async #finalizeStep(
    user: DatabaseUser,
    a: Exclude<DeletionAction, RoleDeletionAction>,
    ctx: ReconcileContext,
  ): Promise<void> {
    const { client } = this.#deps;
    const { signal } = ctx;
    if (a.kind === "deleteSecret") {
      const { namespace, name } = a;
      await client.delete(SecretResource, { signal, namespace, name, ...uidOf(a) });
    } else {
      await removeFinalizer(client, {
        resource: DatabaseUserKind,
        object: user,
        finalizer: FINALIZER,
        signal,
      });
    }
  }

  async #executor(clusterName: string, ctx: ReconcileContext): Promise<PgExecutor> {
    const resolved = await this.#services.resolver.resolve(clusterName, { signal: ctx.signal });
    return new PgExecutor(resolved.pool, { logger: ctx.logger, signal: ctx.signal });
  }

  async #act(a: UserAction, run: Run): Promise<void> {
    const { c } = run;
    switch (a.kind) {
      case "addFinalizer":
        c.user = await addFinalizer(this.#deps.client, {
          resource: DatabaseUserKind,
          object: c.user,
          finalizer: FINALIZER,
          signal: c.signal,
        });
        return;
      case "recordImported":
      case "recordSecrets":
        run.record = await this.#reads.write(() => writeState(c, a.state, run.record));
        return;
      case "recordPending":
        run.record = await this.#reads.write(() =>
          writeState(c, beginPending(c, a.state, a), run.record)
        );
        return;
      case "applyPending":
        return await this.#applyPending(a.state, run);
      case "ensureRoles":
        return await this.#ensureRoles(a.state, run, a.clearPassword === true);
      case "writeSecrets":
        return await this.writeSecrets(c.user.metadata.namespace, a.changes, c);
    }
  }

  /**
   * Makes the roles match the spec. On a user already Ready at this generation, whatever that
   * changed differed from the spec on the server (a setting or membership changed by hand, an
   * expiry moved): the Warning names what was put back, redacted (no password ever appears).
   */
  async #ensureRoles(state: CredentialsState, run: Run, clearPassword: boolean): Promise<void> {
    const { c } = run;
    const ran: string[] = [];
    await ensureRoles({ ...c, ran }, state, clearPassword ? { clearPassword } : undefined);
    if (!ran.length || !readyAtGeneration(c.user)) return;
    this.#deps.recorder.emit(c.user, "Warning", "DriftCorrected", driftMessage(ran));
  }

  /** Sets the recorded pending password, verifies it, and records it as the current one. */
  async #applyPending(state: PendingState, run: Run): Promise<void> {
    const reason = state.pending.reason;
    const committed = await applyPending(run.c, state);
    run.record = await this.#reads.write(() => writeState(run.c, committed, run.record));
    this.#deps.recorder.emit(
      run.c.user,
      "Normal",
      reason === "Created" ? "PasswordSet" : "PasswordRotated",
      `New password for role ${JSON.stringify(committed.role)} verified and recorded (${reason})`,
    );
  }

  /** Observe: InSync says what differs, Ready whether the role matches; no Secret is written. */
  async #observed(
    user: DatabaseUser,
    p: Extract<Pass, { kind: "observed" }>,
    ctx: ReconcileContext,
  ): Promise<Result> {
    const before = user.status?.conditions;
    const name = JSON.stringify(usernameOf(user));
    const sync = inSync(p.drift);
    const noSecret = "managementPolicy is Observe: nothing is changed on the server, and no " +
      "Secret is written (no password is known)";
    const inSyncInput = inSyncCondition(p.drift, `role ${name}`);
    await this.#writeStatus(user, {
      ready: sync
        ? { reason: "Observed", message: `Role ${name} matches the spec; ${noSecret}` }
        : {
          reason: "OutOfSync",
          message: `Role ${name} differs from the spec (see InSync); ${noSecret}`,
        },
      clusterName: p.clusterName,
      inSync: inSyncInput,
    }, ctx);
    const was = before?.find((c) => c.type === "InSync");
    if (!was || was.reason !== inSyncInput.reason) {
      const type = sync ? "Normal" : "Warning";
      this.#deps.recorder.emit(user, type, inSyncInput.reason, inSyncInput.message);
    }
    return done;
  }

  /** Deleting an observed user: the finalizer of an earlier Manage goes; no role is touched. */
  async #releaseObserved(user: DatabaseUser, ctx: ReconcileContext): Promise<Result> {
    await releaseObserved(this.#deps, {
      resource: DatabaseUserKind,
      object: user,
      finalizer: FINALIZER,
      kept: "no role was dropped or changed",
      signal: ctx.signal,
    });
    return done;
  }

  async #ready(user: DatabaseUser, r: UserOutcome, ctx: ReconcileContext): Promise<Result> {
    const wasReady = user.status?.phase === "Ready";
    await this.#writeStatus(user, {
      ready: { reason: "Ready", message: `Role ${JSON.stringify(usernameOf(user))} is ready` },
      clusterName: r.clusterName,
      secretNames: r.secretNames,
      activeRole: r.state.role,
      passwordUpdatedAt: r.state.updatedAt,
      lastRotateRequest: r.state.lastRequest,
      nextRotation: r.next,
    }, ctx);
    if (!wasReady) {
      this.#deps.recorder.emit(user, "Normal", "Ready", "Role, grants and Secret are ready");
    }
    const now = this.#deps.clock.now();
    return r.next === undefined ? done : requeueAfter(untilRotation(r.next, now));
  }

  /** Records a failure (Event on a new reason, status) and hands it to the runtime's retry. */
  async #fail(
    user: DatabaseUser,
    f: ReadyFailure,
    o: { ctx: ReconcileContext; cause?: unknown },
  ): Promise<never> {
    if (user.status?.conditions?.find((x) => x.type === "Ready")?.reason !== f.reason) {
      this.#deps.recorder.emit(user, "Warning", f.reason, f.message);
    }
    await this.#writeStatus(user, { ready: f }, o.ctx);
    if (f.terminal && !(o.cause instanceof TerminalError)) {
      throw new TerminalError(f.reason, f.message, { cause: o.cause });
    }
    throw o.cause ?? new RetryableError(f.reason, f.message);
  }

  #writeStatus(
    user: DatabaseUser,
    input: Omit<StatusInput, "entries" | "username" | "now">,
    ctx: ReconcileContext,
  ): Promise<boolean> {
    return updateStatus(this.#deps.client, {
      resource: DatabaseUserKind,
      object: user,
      compute: (latest) =>
        computeStatus(latest, {
          ...input,
          entries: databaseEntries(latest),
          username: usernameOf(latest),
          now: this.#deps.clock.now(),
        }),
      signal: ctx.signal,
    });
  }

  /** The Secrets this user owns, from the metadata-only informer's owner-uid index. */
  #owned(u: DatabaseUser): Secret[] {
    return ownedSecrets(u, secretsOwnedBy(this.#i, u.metadata.uid));
  }

  /**
   * The user's delivered copies, listed from the API by label rather than from the informer: a
   * copy written just before the deletion may not be in the cache yet, and the finalizer is the
   * only thing that deletes copies (they have no ownerReference).
   */
  async #copies(u: DatabaseUser, signal: AbortSignal): Promise<Secret[]> {
    if (!u.metadata.uid) return [];
    const list = await this.#deps.client.list<Secret>(SecretResource, {
      signal,
      metadataOnly: true,
      labelSelector: `${SOURCE_UID_LABEL}=${u.metadata.uid}`,
    });
    // An empty metadata-only list comes back with `items: null`.
    return (list.items ?? []).filter((s) => isCopyOf(s, u));
  }

  /** Cluster-scoped resources that read Secret `name` of the user's namespace. */
  #readers(namespace: string | undefined, name: string): string[] {
    return secretReaders({ namespace, name }, {
      clusters: this.#i.clusters.list(),
      storages: this.#i.storages.list(),
    });
  }
}

/** Retains, drops or releases one login role; a role this user never owned is left alone. */
async function releaseRole(exec: PgExecutor, a: RoleDeletionAction): Promise<void> {
  try {
    if (a.kind === "releaseRole") await exec.releaseUser(a.release);
    else if (a.kind === "retainRole") await exec.retainUser({ username: a.role, marker: a.marker });
    else await exec.dropUser({ username: a.role, marker: a.marker });
  } catch (e) {
    // Refused as unmanaged: the role exists but was never this user's.
    if (!(e instanceof TerminalError && e.reason === "RoleExistsUnmanaged")) throw e;
  }
}

function readyAtGeneration(u: DatabaseUser): boolean {
  const ready = u.status?.conditions?.find((x) => x.type === "Ready");
  return ready?.status === "True" && u.status?.observedGeneration === u.metadata.generation;
}

const DRIFT_MESSAGE_MAX = 1000;

/** "Put back …: s1; s2", cut to fit an Event. */
export function driftMessage(statements: readonly string[]): string {
  const text = `Put back what differed from the spec on the server: ${statements.join("; ")}`;
  return text.length <= DRIFT_MESSAGE_MAX ? text : `${text.slice(0, DRIFT_MESSAGE_MAX - 1)}…`;
}

function uidOf(a: { uid?: string }): { uid?: string } {
  return a.uid ? { uid: a.uid } : {};
}

/** Registers the DatabaseUser controller with the manager. */
export function setupDatabaseUserController(deps: ControllerDeps, services: Services): Controller {
  const reconciler = new DatabaseUserReconciler(deps, services);
  return startController(deps, {
    name: "databaseuser",
    reconciler,
    watches: databaseUserWatches(deps, { echo: (s, wake) => reconciler.secretEcho(s, wake) }),
  });
}
