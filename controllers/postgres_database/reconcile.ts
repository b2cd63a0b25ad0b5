/**
 * The PostgresDatabase controller (pg-db-operator compatibility): observe (the object, its
 * Secret, the server and whether the role exists) → plan (plan.ts) → act → status (status.ts).
 * The server is the DBCluster named by --postgresdatabase-cluster, else the libpq environment.
 */
import { type PostgresDatabase, PostgresDatabaseKind } from "../../crds/postgres_database.ts";
import type { Services } from "../services/services.ts";
import type { Controller, ReconcileContext, Result } from "../runtime/controller.ts";
import { done, requeueAfter } from "../runtime/controller.ts";
import { errorMessage, RetryableError, TerminalError } from "../../lib/errors.ts";
import { type PgdbFailure, pgdbFailure } from "./reasons.ts";
import { MERGE_PATCH, SecretResource } from "../runtime/kube.ts";
import { pauseGate } from "../runtime/pause.ts";
import { addFinalizer, ownerRef, removeFinalizer, updateStatus } from "../runtime/objects.ts";
import { type Reconciler, startController } from "../runtime/reconciler.ts";
import type { ControllerDeps, InformerSet } from "../runtime/shared.ts";
import { adoptionConsent, NO_CLUSTER_CONSENT } from "../services/adoption.ts";
import { serverFromLibpqEnv } from "../services/resolver.ts";
import { referencedBy } from "../services/secret_owner.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import type { AdoptionConsent } from "../postgres/claims.ts";
import { observeServer } from "../postgres/catalog.ts";
import { mapPgError, PgExecutor } from "../postgres/execute.ts";
import type { ServerConfig, ServerPool } from "../postgres/pool.ts";
import { generatePassword, scramVerifier } from "../postgres/scram.ts";
import {
  FINALIZER,
  MANAGED_BY_LABEL,
  needsServer,
  type ObservedSecret,
  type PgdbAction,
  type PgdbPlan,
  planPostgresDatabase,
  secretStateOf,
  serverQueryOf,
  type ServerState,
  serverStateOf,
  wantsAdoption,
} from "./plan.ts";
import { computePgdbStatus, type PgdbOutcome, readyEvent } from "./status.ts";
import { postgresDatabaseWatches } from "./watches.ts";

const PASSWORD_LENGTH = 24;

interface Server {
  config: ServerConfig;
  pool: ServerPool;
  adminRole: string;
  /** The DBCluster it came from; undefined for the libpq environment. */
  cluster?: DBCluster;
}

/** What the actions of one reconcile share. */
interface Run {
  p: PostgresDatabase;
  server: Server | undefined;
  secret: ObservedSecret | undefined;
  ctx: ReconcileContext;
  /** The role's password once ensureRole ran (the Secret's, until a new one is made). */
  password: string | undefined;
  rotated: boolean;
}

/** Reconciles one PostgresDatabase: its database, its login role and its Secret. */
export class PostgresDatabaseReconciler implements Reconciler {
  readonly #deps: ControllerDeps;
  readonly #services: Services;
  readonly #objects: InformerSet<PostgresDatabase>;
  readonly #clusters: InformerSet<DBCluster>;
  readonly #storages: InformerSet<BackupStorage>;

  constructor(deps: ControllerDeps, services: Services) {
    this.#deps = deps;
    this.#services = services;
    this.#objects = deps.informers.for<PostgresDatabase>(PostgresDatabaseKind);
    this.#clusters = deps.informers.for<DBCluster>(DBClusterKind);
    this.#storages = deps.informers.for<BackupStorage>(BackupStorageKind);
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<Result> {
    const p = this.#objects.get(key);
    if (!p) return done;
    // Paused: no SQL, no Secret or finalizer write, deletion waits. pause_and_observe.md.
    const gate = { resource: PostgresDatabaseKind, object: p, signal: ctx.signal };
    if ((await pauseGate(this.#deps, gate)).paused) return done;
    const rawSecret = await this.#services.secretReads.find<ObservedSecret>({
      namespace: p.metadata.namespace ?? "",
      name: p.spec.targetSecret.name,
      signal: ctx.signal,
    });
    const secret = secretStateOf(p, { secret: rawSecret, readers: this.#readers(p) });
    const { server, state, consent } = await this.#observeServer(p, ctx);
    const now = this.#deps.clock.now();
    const rotationIntervalMs = this.#services.config.postgresDatabase.rotationIntervalMs;
    const plan = planPostgresDatabase(p, {
      server: state,
      secret,
      now,
      ...(consent ? { consent } : {}),
      ...(rotationIntervalMs === undefined ? {} : { rotationIntervalMs }),
    });
    const run: Run = {
      p,
      server,
      secret: rawSecret,
      ctx,
      password: secret?.data.PGPASSWORD,
      rotated: false,
    };
    const outcome: PgdbOutcome = { converged: false };
    const failure = await this.#execute(plan, { run, outcome, now });
    if (failure === "gone") return done;
    if (failure) outcome.failure = { reason: failure.reason, message: failure.message };
    await this.#writeStatus(p, { current: run.p, outcome, ctx });
    if (failure?.terminal) throw new TerminalError(failure.reason, failure.message);
    if (failure) throw new RetryableError(failure.reason, failure.message);
    return plan.rotateInMs === undefined ? done : requeueAfter(plan.rotateInMs);
  }

  /** Runs the plan's actions in order; the first failure stops them and is returned. */
  async #execute(
    plan: PgdbPlan,
    o: { run: Run; outcome: PgdbOutcome; now: number },
  ): Promise<PgdbFailure | "gone" | undefined> {
    try {
      for (const action of plan.actions) {
        const next = await this.#act(action, o.run);
        if (next === "gone") return "gone";
        o.run.p = next;
      }
    } catch (e) {
      return pgdbFailure(e);
    }
    if (plan.blocked) return plan.blocked;
    o.outcome.converged = true;
    if (o.run.rotated) o.outcome.passwordUpdatedAt = o.now;
    return undefined;
  }

  /** The DBClusters and BackupStorages that read credentials from the target Secret. */
  #readers(p: PostgresDatabase): string[] {
    const ref = { namespace: p.metadata.namespace ?? "", name: p.spec.targetSecret.name };
    return [
      ...referencedBy("DBCluster", this.#clusters.list(), ref),
      ...referencedBy("BackupStorage", this.#storages.list(), ref),
    ];
  }

  /** Connects and reads the role, or says why the server cannot be used now. */
  async #observeServer(
    p: PostgresDatabase,
    ctx: ReconcileContext,
  ): Promise<{ server?: Server; state: ServerState; consent?: AdoptionConsent }> {
    if (!needsServer(p)) {
      return { state: { kind: "unavailable", reason: "Deleting", message: "Deleting" } };
    }
    const ns = p.metadata.namespace ?? "";
    try {
      const server = await this.#connect(ns, ctx);
      const consent = !wantsAdoption(p)
        ? undefined
        : server.cluster
        ? await adoptionConsent(this.#deps.client, {
          cluster: server.cluster,
          namespace: ns,
          signal: ctx.signal,
        })
        : NO_CLUSTER_CONSENT;
      const snap = await server.pool.run(
        (sql) => observeServer(sql, serverQueryOf(p, consent)),
        { signal: ctx.signal },
      ).catch((e) => {
        throw mapPgError(e, { server: server.pool.endpoint });
      });
      const state = serverStateOf(p, {
        host: server.config.host,
        port: server.config.port,
        adminRole: server.adminRole,
        snap,
        consent,
      });
      return { server, state, ...(consent ? { consent } : {}) };
    } catch (e) {
      if (!(e instanceof RetryableError)) throw e;
      const { reason, message } = pgdbFailure(e);
      return { state: { kind: "unavailable", reason, message } };
    }
  }

  /** The server: the configured DBCluster, else the libpq environment of the operator. */
  async #connect(namespace: string, ctx: ReconcileContext): Promise<Server> {
    const { config: settings, resolver, env, pools } = this.#services;
    const cluster = settings.postgresDatabase.cluster;
    if (cluster !== undefined) {
      const r = await resolver.resolve(cluster, { namespace, signal: ctx.signal });
      return { config: r.server, pool: r.pool, adminRole: r.adminRole, cluster: r.cluster };
    }
    let config: ServerConfig;
    try {
      config = serverFromLibpqEnv(env);
    } catch (e) {
      throw new RetryableError("ServerNotConfigured", errorMessage(e));
    }
    return {
      config,
      pool: await pools.get(config, { owner: "libpq-environment" }),
      adminRole: config.user,
    };
  }

  async #act(action: PgdbAction, run: Run): Promise<PostgresDatabase | "gone"> {
    const { client } = this.#deps;
    const { p, ctx } = run;
    const change = { resource: PostgresDatabaseKind, object: p, finalizer: FINALIZER };
    switch (action.kind) {
      case "addFinalizer":
        return await addFinalizer(client, { ...change, signal: ctx.signal });
      case "ensureDatabase":
        await executor(action, run).ensureDatabase(action.spec);
        return p;
      case "ensureRole":
        await this.#ensureRole(action, run);
        return p;
      case "writeSecret":
        await this.#writeSecret(action, run);
        return p;
      case "deleteSecret":
        await client.delete(SecretResource, {
          namespace: p.metadata.namespace ?? "",
          name: action.name,
          ...(run.secret?.metadata.uid ? { uid: run.secret.metadata.uid } : {}),
          signal: ctx.signal,
        });
        this.#services.secretReads.forget({
          namespace: p.metadata.namespace ?? "",
          name: action.name,
        });
        return p;
      case "removeFinalizer":
        await removeFinalizer(client, { ...change, signal: ctx.signal });
        return "gone";
    }
  }

  async #ensureRole(action: Extract<PgdbAction, { kind: "ensureRole" }>, run: Run) {
    const exec = executor(action, run);
    if (action.password === "keep") {
      await exec.ensureUser(action.spec);
      return;
    }
    const password = action.password === "new" ? generatePassword(PASSWORD_LENGTH) : run.password!;
    await exec.ensureUser({ ...action.spec, passwordVerifier: await scramVerifier(password) });
    // Verified before the Secret changes, so the Secret never holds a password that fails.
    const user = action.spec.username;
    if (!await exec.verifyLogin({ user, password }, { database: run.p.spec.name })) {
      throw new RetryableError(
        "PasswordVerificationFailed",
        `Cannot log in as role ${JSON.stringify(user)} with its new password: ` +
          "check pg_hba.conf and password_encryption (scram-sha-256) on the server",
      );
    }
    run.password = password;
    run.rotated = action.password === "new";
  }

  async #writeSecret(action: Extract<PgdbAction, { kind: "writeSecret" }>, run: Run) {
    const { p, ctx } = run;
    const ns = p.metadata.namespace ?? "";
    const name = p.spec.targetSecret.name;
    const data = encode({ ...action.data, PGPASSWORD: run.password ?? "" });
    const metadata = { labels: { [MANAGED_BY_LABEL]: "dbtether" }, ownerReferences: [ownerRef(p)] };
    const reads = this.#services.secretReads;
    if (action.create) {
      reads.remember(
        await this.#deps.client.create(SecretResource, {
          namespace: ns,
          body: {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name, namespace: ns, ...metadata },
            type: "Opaque",
            data,
          },
          signal: ctx.signal,
        }),
      );
    } else {
      // A patch in place: the Secret keeps its uid and never disappears for its readers.
      reads.remember(
        await this.#deps.client.patch(SecretResource, {
          namespace: ns,
          name,
          body: {
            metadata: { ...metadata, resourceVersion: run.secret?.metadata.resourceVersion },
            data,
          },
          contentType: MERGE_PATCH,
          signal: ctx.signal,
        }),
      );
    }
    if (action.announce) {
      const what = action.create ? "created" : "has a new password";
      this.#deps.recorder.emit(
        p,
        "Normal",
        action.announce,
        `Secret ${JSON.stringify(name)} ${what}`,
      );
    }
  }

  /** Writes the status when it changed, and an Event when Ready changed. */
  async #writeStatus(
    p: PostgresDatabase,
    o: { current: PostgresDatabase; outcome: PgdbOutcome; ctx: ReconcileContext },
  ): Promise<void> {
    const { client, clock, recorder } = this.#deps;
    let written: PostgresDatabase["status"] | undefined;
    await updateStatus(client, {
      resource: PostgresDatabaseKind,
      object: o.current,
      compute: (latest) => {
        written = computePgdbStatus(latest, o.outcome, { now: new Date(clock.now()) });
        return written;
      },
      signal: o.ctx.signal,
    });
    const event = written && readyEvent(p.status, written);
    if (event) recorder.emit(o.current, event.type, event.reason, event.message);
  }
}

/** Starts the PostgresDatabase controller. */
export function setupPostgresDatabaseController(
  deps: ControllerDeps,
  services: Services,
): Controller {
  return startController(deps, {
    name: "postgresdatabase",
    reconciler: new PostgresDatabaseReconciler(deps, services),
    watches: postgresDatabaseWatches(deps),
  });
}

/** The executor for an action that needs the server; the planner only plans those when ready. */
function executor(action: PgdbAction, run: Run): PgExecutor {
  if (!run.server) throw new Error(`Cannot run ${action.kind}: no connection to the server`);
  return new PgExecutor(run.server.pool, { logger: run.ctx.logger, signal: run.ctx.signal });
}

function encode(data: Record<string, string>): Record<string, string> {
  const enc = new TextEncoder();
  return Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, btoa(String.fromCharCode(...enc.encode(v)))]),
  );
}
