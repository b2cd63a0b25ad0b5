/**
 * The PostgresDatabase controller (pg-db-operator compatibility): observe (the object, its
 * Secret, the server and whether the role exists) → plan (plan.ts) → act → status (status.ts).
 * The server is the DBCluster named by --postgresdatabase-cluster, else the libpq environment.
 */
import type { KubeObject } from "../../crds/kind.ts";
import { type PostgresDatabase, PostgresDatabaseKind } from "../../crds/postgres_database.ts";
import type { Services } from "../services/services.ts";
import {
  type Controller,
  done,
  type ReconcileContext,
  requeueAfter,
  type Result,
} from "../runtime/controller.ts";
import { errorMessage, RetryableError, TerminalError } from "../../lib/errors.ts";
import { MERGE_PATCH, SecretResource } from "../runtime/kube.ts";
import {
  addFinalizer,
  isOwnedBy,
  ownerRef,
  removeFinalizer,
  updateStatus,
} from "../runtime/objects.ts";
import { addController, type ControllerDeps } from "../runtime/shared.ts";
import { adoptionConsent, NO_CLUSTER_CONSENT } from "../services/adoption.ts";
import { secretData as decodeSecret, serverFromLibpqEnv } from "../services/resolver.ts";
import { otherOwner, referencedBy } from "../services/secret_owner.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import type { AdoptionConsent } from "../postgres/claims.ts";
import { observeServer } from "../postgres/catalog.ts";
import { mapPgError, PgExecutor } from "../postgres/execute.ts";
import type { ServerConfig, ServerPool } from "../postgres/pool.ts";
import { generatePassword, scramVerifier } from "../postgres/scram.ts";
import {
  FINALIZER,
  loginRoleOf,
  MANAGED_BY_LABEL,
  type PgdbAction,
  planPostgresDatabase,
  type SecretState,
  type ServerState,
  wantsAdoption,
} from "./plan.ts";
import { checkUserClaim } from "../postgres/plan_user.ts";
import { formatMarker } from "../postgres/names.ts";
import { computePgdbStatus, type PgdbOutcome } from "./status.ts";

type Secret = KubeObject<unknown, unknown> & { data?: Record<string, string>; type?: string };

const PASSWORD_LENGTH = 24;

interface Server {
  config: ServerConfig;
  pool: ServerPool;
  adminRole: string;
  /** The DBCluster it came from; undefined for the libpq environment. */
  cluster?: DBCluster;
}

export function setupPostgresDatabaseController(
  deps: ControllerDeps,
  services: Services,
): Controller {
  const { client, clock, recorder, informers } = deps;
  const objects = informers.for<PostgresDatabase>(PostgresDatabaseKind);
  const secrets = informers.for<KubeObject<unknown, unknown>>(SecretResource, {
    metadataOnly: true,
  });
  const settings = services.config.postgresDatabase;
  const clusters = informers.for<DBCluster>(DBClusterKind);
  const storages = informers.for<BackupStorage>(BackupStorageKind);

  const reconcile = async (key: string, ctx: ReconcileContext): Promise<Result> => {
    const p = objects.get(key);
    if (!p) return done;
    const ns = p.metadata.namespace ?? "";
    const secretName = p.spec.targetSecret.name;
    // observe
    const rawSecret = await client.find<Secret>(SecretResource, {
      namespace: ns,
      name: secretName,
    });
    const readers = [
      ...referencedBy("DBCluster", clusters.list(), { namespace: ns, name: secretName }),
      ...referencedBy("BackupStorage", storages.list(), { namespace: ns, name: secretName }),
    ];
    const claimedBy = rawSecret &&
      (otherOwner(rawSecret, { uid: p.metadata.uid }) ??
        (readers.length ? `${readers.join(", ")}, which reads credentials from it` : undefined));
    const secret: SecretState | undefined = rawSecret && {
      ownedByUs: isOwnedBy(rawSecret, p),
      ...(claimedBy === undefined ? {} : { claimedBy }),
      data: decodeSecret(rawSecret),
      ...(rawSecret.metadata.creationTimestamp
        ? { creationTimestamp: rawSecret.metadata.creationTimestamp }
        : {}),
    };
    let server: Server | undefined;
    let state: ServerState;
    let consent: AdoptionConsent | undefined;
    if (p.metadata.deletionTimestamp) {
      state = { kind: "unavailable", reason: "Deleting", message: "Deleting" };
    } else {
      try {
        server = await connect(ns);
        if (wantsAdoption(p)) {
          consent = server.cluster
            ? await adoptionConsent(client, { cluster: server.cluster, namespace: ns })
            : NO_CLUSTER_CONSENT;
        }
        const role = loginRoleOf(p, consent);
        const snap = await server.pool.run((sql) =>
          observeServer(sql, {
            roles: [p.spec.name],
            ...(role.adopt && consent?.granted
              ? { adoptable: { roles: [role.username], marker: formatMarker(role.marker) } }
              : {}),
          }), { signal: ctx.signal }).catch((e) => {
            throw mapPgError(e, { server: server!.pool.endpoint });
          });
        state = {
          kind: "ready",
          host: server.config.host,
          port: server.config.port,
          adminRole: server.adminRole,
          roleExists: snap.roles.has(p.spec.name),
          ...roleRefusal(() => checkUserClaim(role, snap)),
        };
      } catch (e) {
        if (!(e instanceof RetryableError)) throw e;
        state = { kind: "unavailable", reason: e.reason, message: e.message };
      }
    }
    // plan
    const now = clock.now();
    const plan = planPostgresDatabase(p, {
      server: state,
      secret,
      now,
      ...(consent ? { consent } : {}),
      ...(settings.rotationIntervalMs === undefined
        ? {}
        : { rotationIntervalMs: settings.rotationIntervalMs }),
    });
    // act
    const outcome: PgdbOutcome = { converged: false };
    let failure = plan.blocked;
    let current = p;
    const run = { password: secret?.data.PGPASSWORD, rotated: false };
    try {
      for (const action of plan.actions) {
        const next = await act(action, { p: current, server, ctx, run, secret: rawSecret });
        if (next === "gone") return done;
        current = next;
      }
      outcome.converged = !failure;
      if (run.rotated) outcome.passwordUpdatedAt = now;
    } catch (e) {
      failure = {
        reason: e instanceof RetryableError || e instanceof TerminalError ? e.reason : "Error",
        message: errorMessage(e),
        terminal: e instanceof TerminalError,
      };
    }
    if (failure) outcome.failure = { reason: failure.reason, message: failure.message };
    // status
    let written: PostgresDatabase["status"] | undefined;
    await updateStatus(client, {
      resource: PostgresDatabaseKind,
      object: current,
      compute: (latest) => {
        written = computePgdbStatus(latest, outcome, { now: new Date(clock.now()) });
        return written;
      },
    });
    const before = p.status?.conditions?.find((c) => c.type === "Ready");
    const after = written?.conditions?.find((c) => c.type === "Ready");
    if (after && (before?.status !== after.status || before.reason !== after.reason)) {
      recorder.emit(
        current,
        after.status === "True" ? "Normal" : "Warning",
        after.reason,
        after.message,
      );
    }
    if (failure?.terminal) throw new TerminalError(failure.reason, failure.message);
    if (failure) throw new RetryableError(failure.reason, failure.message);
    return plan.rotateInMs === undefined ? done : requeueAfter(plan.rotateInMs);
  };

  /** The server: the configured DBCluster, else the libpq environment of the operator. */
  const connect = async (namespace: string): Promise<Server> => {
    if (settings.cluster !== undefined) {
      const r = await services.resolver.resolve(settings.cluster, { namespace });
      return { config: r.server, pool: r.pool, adminRole: r.adminRole, cluster: r.cluster };
    }
    let config: ServerConfig;
    try {
      config = serverFromLibpqEnv(services.env);
    } catch (e) {
      throw new RetryableError("ServerNotConfigured", errorMessage(e));
    }
    return {
      config,
      pool: await services.pools.get(config, { owner: "libpq-environment" }),
      adminRole: config.user,
    };
  };

  const act = async (
    action: PgdbAction,
    o: {
      p: PostgresDatabase;
      server: Server | undefined;
      ctx: ReconcileContext;
      run: { password: string | undefined; rotated: boolean };
      secret: Secret | undefined;
    },
  ): Promise<PostgresDatabase | "gone"> => {
    const { p, ctx, run } = o;
    const ns = p.metadata.namespace ?? "";
    const exec = () => {
      if (!o.server) throw new Error(`Cannot run ${action.kind}: no connection to the server`);
      return new PgExecutor(o.server.pool, { logger: ctx.logger, signal: ctx.signal });
    };
    switch (action.kind) {
      case "addFinalizer":
        return await addFinalizer(client, {
          resource: PostgresDatabaseKind,
          object: p,
          finalizer: FINALIZER,
        }) as PostgresDatabase;
      case "ensureDatabase":
        await exec().ensureDatabase(action.spec);
        return p;
      case "ensureRole": {
        if (action.password === "keep") {
          await exec().ensureUser(action.spec);
          return p;
        }
        const password = action.password === "new"
          ? generatePassword(PASSWORD_LENGTH)
          : run.password!;
        const e = exec();
        await e.ensureUser({ ...action.spec, passwordVerifier: await scramVerifier(password) });
        // Verified before the Secret changes, so the Secret never holds a password that fails.
        if (
          !await e.verifyLogin({ user: action.spec.username, password }, { database: p.spec.name })
        ) {
          throw new RetryableError(
            "PasswordVerificationFailed",
            `Cannot log in as role ${
              JSON.stringify(action.spec.username)
            } with its new password: ` +
              "check pg_hba.conf and password_encryption (scram-sha-256) on the server",
          );
        }
        run.password = password;
        run.rotated = action.password === "new";
        return p;
      }
      case "writeSecret": {
        const data = encode({ ...action.data, PGPASSWORD: run.password ?? "" });
        const metadata = {
          labels: { [MANAGED_BY_LABEL]: "dbtether" },
          ownerReferences: [ownerRef(p)],
        };
        if (action.create) {
          await client.create(SecretResource, {
            namespace: ns,
            body: {
              apiVersion: "v1",
              kind: "Secret",
              metadata: { name: p.spec.targetSecret.name, namespace: ns, ...metadata },
              type: "Opaque",
              data,
            },
          });
        } else {
          // A patch in place: the Secret keeps its uid and never disappears for its readers.
          await client.patch(SecretResource, {
            namespace: ns,
            name: p.spec.targetSecret.name,
            body: {
              metadata: { ...metadata, resourceVersion: o.secret?.metadata.resourceVersion },
              data,
            },
            contentType: MERGE_PATCH,
          });
        }
        if (run.rotated) {
          recorder.emit(
            p,
            "Normal",
            action.create ? "SecretCreated" : "PasswordRotated",
            `Secret ${JSON.stringify(p.spec.targetSecret.name)} ${
              action.create ? "created" : "has a new password"
            }`,
          );
        }
        return p;
      }
      case "deleteSecret":
        await client.delete(SecretResource, {
          namespace: ns,
          name: action.name,
          ...(o.secret?.metadata.uid ? { uid: o.secret.metadata.uid } : {}),
        });
        return p;
      case "removeFinalizer":
        await removeFinalizer(client, {
          resource: PostgresDatabaseKind,
          object: p,
          finalizer: FINALIZER,
        });
        return "gone";
    }
  };

  const controller = addController(deps, "postgresdatabase", reconcile);
  controller.watch(objects);
  // A deleted or edited Secret brings its PostgresDatabase back to converge it.
  controller.watch(secrets, (s, old, deleted) => {
    if (!deleted && old && s.metadata.resourceVersion === old.metadata.resourceVersion) return [];
    const ns = s.metadata.namespace;
    return (s.metadata.ownerReferences ?? [])
      .filter((r) =>
        r.kind === PostgresDatabaseKind.kind && r.apiVersion === PostgresDatabaseKind.apiVersion
      )
      .map((r) => `${ns}/${r.name}`);
  });
  return controller;
}

/** The refusal a claim check throws, as ServerState's roleRefusal. */
function roleRefusal(check: () => unknown): { roleRefusal?: { reason: string; message: string } } {
  try {
    check();
    return {};
  } catch (e) {
    if (!(e instanceof TerminalError)) throw e;
    return { roleRefusal: { reason: e.reason, message: e.message } };
  }
}

function encode(data: Record<string, string>): Record<string, string> {
  const enc = new TextEncoder();
  return Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, btoa(String.fromCharCode(...enc.encode(v)))]),
  );
}
