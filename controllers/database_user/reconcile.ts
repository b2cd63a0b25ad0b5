/**
 * The DatabaseUser controller: observe (the user, its Databases, its Secrets and credentials
 * record) → plan (plan.ts, rotation.ts: pure) → act (roles and grants through PgExecutor,
 * password steps through credentials.ts, Secrets) → status (status.ts; written only when changed).
 */
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import { type DatabaseUser, DatabaseUserKind } from "../../crds/database_user.ts";
import type { KubeObject, OwnerReference } from "../../crds/kind.ts";
import type { Services } from "../services/services.ts";
import { PgExecutor } from "../postgres/execute.ts";
import { type Controller, done, requeueAfter, type Result } from "../runtime/controller.ts";
import { ConflictError, errorMessage, RetryableError, TerminalError } from "../../lib/errors.ts";
import { objectKey } from "../runtime/informer.ts";
import { SecretResource } from "../runtime/kube.ts";
import type { Logger } from "../../lib/log.ts";
import { addFinalizer, hasFinalizer, removeFinalizer, updateStatus } from "../runtime/objects.ts";
import { addController, type ControllerDeps } from "../runtime/shared.ts";
import { clusterChangeMatters } from "../services/cluster_changes.ts";
import { adoptionConsent } from "../services/adoption.ts";
import {
  applyPending,
  beginPending,
  type CredentialsContext,
  ensureRoles,
  importFromSecret,
  writeState,
} from "./credentials.ts";
import {
  ADOPT_ANNOTATION,
  checkDatabase,
  checkSecretName,
  clusterOf,
  databaseEntries,
  type DatabaseTarget,
  FINALIZER,
  planCredentials,
  planSecrets,
  ROTATE_ANNOTATION,
  secretTargets,
  usernameOf,
  usersOfCluster,
} from "./plan.ts";
import { decideRotation, loginRoles, rotationPeriodMs, untilRotation } from "./rotation.ts";
import { isOurs, MANAGED_BY_LABEL, MANAGED_BY_VALUE, type Secret } from "./secret.ts";
import { referencedBy } from "../services/secret_owner.ts";
import { type CredentialsState, parseState, STATE_LABEL, stateSecretName } from "./state.ts";
import { computeStatus, type StatusInput } from "./status.ts";

type Meta = KubeObject<unknown, unknown>;

/** The outcome of a converged reconcile, for status. */
interface Converged {
  clusterName: string;
  secretNames: string[];
  state: CredentialsState;
  next: number | undefined;
}

/** Registers the DatabaseUser controller with the manager. */
export function setupDatabaseUserController(deps: ControllerDeps, services: Services): Controller {
  const { client, clock, recorder, informers } = deps;
  const users = informers.for<DatabaseUser>(DatabaseUserKind);
  const databases = informers.for<Database>(DatabaseKind);
  const clusters = informers.for<DBCluster>(DBClusterKind);
  const storages = informers.for<BackupStorage>(BackupStorageKind);
  // Metadata is enough: Secrets are read on demand; this only says which ones exist and changed.
  const secrets = informers.for<Meta>(SecretResource, {
    labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
    metadataOnly: true,
  });

  const ownerRefOf = (u: DatabaseUser): OwnerReference => ({
    apiVersion: DatabaseUserKind.apiVersion,
    kind: DatabaseUserKind.kind,
    name: u.metadata.name,
    uid: u.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  });
  const ownedSecrets = (u: DatabaseUser): Meta[] =>
    secrets.list().filter((s) =>
      s.metadata.namespace === u.metadata.namespace &&
      (s.metadata.ownerReferences ?? []).some((r) => r.uid === u.metadata.uid)
    );

  const targetsOf = (user: DatabaseUser): DatabaseTarget[] =>
    databaseEntries(user).map((e) =>
      checkDatabase(user, e, databases.get(`${e.namespace}/${e.name}`))
    );

  const converge = async (user: DatabaseUser, log: Logger, signal: AbortSignal) => {
    const ns = user.metadata.namespace;
    checkSecretName(user);
    const targets = targetsOf(user);
    const clusterName = clusterOf(targets);
    const resolved = await services.resolver.resolve(clusterName, {
      ...(ns ? { namespace: ns } : {}),
    });
    // The finalizer goes on before the first statement that changes the server.
    user = await addFinalizer(client, {
      resource: DatabaseUserKind,
      object: user,
      finalizer: FINALIZER,
    }) as DatabaseUser;
    const exec = new PgExecutor(resolved.pool, { logger: log, signal });
    const c: CredentialsContext = {
      user,
      ownerRef: ownerRefOf(user),
      username: usernameOf(user),
      targets,
      client,
      pool: resolved.pool,
      exec,
      now: () => clock.now(),
      ...(user.metadata.annotations?.[ADOPT_ANNOTATION] === "true"
        ? {
          consent: await adoptionConsent(client, {
            cluster: resolved.cluster,
            namespace: ns ?? "default",
          }),
        }
        : {}),
    };
    const wanted = secretTargets(user, targets);
    const existing = new Map<string, Secret>();
    for (const w of wanted) {
      const s = await client.find<Secret>(SecretResource, { namespace: ns, name: w.name });
      if (s) existing.set(w.name, s);
    }
    let stateObj = await client.find<Secret>(SecretResource, {
      namespace: ns,
      name: stateSecretName(user),
    });
    if (stateObj && !isOurs(stateObj, user)) {
      throw new RetryableError(
        "SecretConflict",
        `Cannot keep credentials in Secret ${
          JSON.stringify(stateObj.metadata.name)
        }: it exists and does not belong to this DatabaseUser`,
      );
    }
    let state = parseState(stateObj);
    const requested = user.metadata.annotations?.[ROTATE_ANNOTATION];
    const decision = decideRotation({
      now: clock.now(),
      rotation: user.spec.rotation,
      updatedAt: state.updatedAt ? Date.parse(state.updatedAt) : undefined,
      requested,
      lastRequest: state.lastRequest,
      deletedSecrets: state.secrets.filter((n) =>
        wanted.some((w) => w.name === n) && !existing.has(n)
      ),
    });
    const importFrom = wanted.find((w) => {
      const s = existing.get(w.name);
      return s !== undefined && isOurs(s, user);
    })?.name;
    let importFailed = false;
    let rotated = false;
    for (let round = 0; round < 4; round++) {
      const step = planCredentials({
        state,
        username: c.username,
        alternating: user.spec.rotation?.strategy === "Alternating",
        importFrom,
        due: rotated ? undefined : decision.reason,
        request: requested,
        importFailed,
      });
      if (step.kind === "steady") break;
      if (step.kind === "import") {
        const imported = await importFromSecret(c, existing.get(step.secret)!, {
          lastRequest: requested,
          updatedAt: user.status?.passwordUpdatedAt,
        });
        if (!imported) importFailed = true;
        else {
          state = imported;
          stateObj = await writeState(c, state, stateObj);
        }
        continue;
      }
      if (step.kind === "begin") {
        state = beginPending(c, state, step);
        stateObj = await writeState(c, state, stateObj);
        continue;
      }
      const reason = state.pending!.reason;
      state = await applyPending(c, state);
      stateObj = await writeState(c, state, stateObj);
      rotated = true;
      recorder.emit(
        user,
        "Normal",
        reason === "Created" ? "PasswordSet" : "PasswordRotated",
        `New password for role ${JSON.stringify(state.role)} verified and recorded (${reason})`,
      );
    }
    await ensureRoles(c, state);
    await writeSecrets(c, { wanted, existing, state, server: resolved.server });
    const written = wanted.map((w) => w.name).sort();
    if (JSON.stringify(state.secrets) !== JSON.stringify(written)) {
      state = { ...state, secrets: written };
      stateObj = await writeState(c, state, stateObj);
    }
    const period = rotationPeriodMs(user.spec.rotation);
    const next = period !== undefined && state.updatedAt
      ? Date.parse(state.updatedAt) + period
      : undefined;
    return { clusterName, secretNames: wanted.map((w) => w.name), state, next } as Converged;
  };

  const writeSecrets = async (
    c: CredentialsContext,
    o: {
      wanted: ReturnType<typeof secretTargets>;
      existing: Map<string, Secret>;
      state: CredentialsState;
      server: { host: string; port: number };
    },
  ) => {
    const ns = c.user.metadata.namespace;
    const actions = planSecrets({
      user: c.user,
      ownerRef: c.ownerRef,
      wanted: o.wanted,
      conn: {
        host: o.server.host,
        port: o.server.port,
        databases: c.targets.map((t) => t.pgName),
        username: o.state.role!,
        password: o.state.password!,
      },
      existing: o.existing,
      owned: ownedSecrets(c.user).filter((s) =>
        s.metadata.labels?.[STATE_LABEL] !== "true"
      ) as Secret[],
      referencedBy: (name) => [
        ...referencedBy("DBCluster", clusters.list(), { namespace: ns ?? "default", name }),
        ...referencedBy("BackupStorage", storages.list(), { namespace: ns ?? "default", name }),
      ],
    });
    const conflicts: { reason: string; message: string }[] = [];
    for (const a of actions) {
      if (a.kind === "conflict") conflicts.push(a);
      else if (a.kind === "delete") {
        await client.delete(SecretResource, { namespace: ns, name: a.name, uid: a.uid });
      } else if (a.create) {
        await client.create(SecretResource, { namespace: ns, body: a.secret });
      } else {
        await client.replace(SecretResource, {
          namespace: ns,
          name: a.secret.metadata.name,
          body: a.secret,
        });
      }
    }
    if (conflicts.length) {
      throw new RetryableError(conflicts[0]!.reason, conflicts.map((x) => x.message).join("; "));
    }
  };

  const finalize = async (user: DatabaseUser): Promise<Result> => {
    if (!hasFinalizer(user, FINALIZER)) return done;
    const fromDatabases = databaseEntries(user)
      .map((e) => databases.get(`${e.namespace}/${e.name}`)?.spec.clusterRef.name)
      .find((n) => n !== undefined);
    const clusterName = fromDatabases ?? user.status?.clusterName;
    if (clusterName) {
      const resolved = await services.resolver.resolve(clusterName);
      const exec = new PgExecutor(resolved.pool, { logger: deps.logger });
      const username = usernameOf(user);
      const roles = new Set(loginRoles(username, true));
      if (user.status?.activeRole) roles.add(user.status.activeRole);
      const marker = { namespace: user.metadata.namespace ?? "default", name: user.metadata.name };
      for (const r of roles) {
        try {
          if (user.spec.deletionPolicy === "Retain") await exec.retainUser({ username: r, marker });
          else await exec.dropUser({ username: r, marker });
        } catch (e) {
          // A role this user never owned (refused as unmanaged) is left alone.
          if (!(e instanceof TerminalError && e.reason === "RoleExistsUnmanaged")) throw e;
        }
      }
    }
    // No garbage collector is assumed: the Secrets go with the user explicitly.
    for (const s of ownedSecrets(user)) {
      await client.delete(SecretResource, {
        namespace: s.metadata.namespace,
        name: s.metadata.name,
        ...(s.metadata.uid ? { uid: s.metadata.uid } : {}),
      });
    }
    await removeFinalizer(client, {
      resource: DatabaseUserKind,
      object: user,
      finalizer: FINALIZER,
    });
    return done;
  };

  const writeStatus = (
    user: DatabaseUser,
    input: Omit<StatusInput, "entries" | "username" | "now">,
  ) =>
    updateStatus(client, {
      resource: DatabaseUserKind,
      object: user,
      compute: (latest) =>
        computeStatus(latest, {
          ...input,
          entries: databaseEntries(latest),
          username: usernameOf(latest),
          now: clock.now(),
        }),
    });

  const reconcile = async (
    key: string,
    ctx: { logger: Logger; signal: AbortSignal },
  ): Promise<Result> => {
    const user = users.get(key);
    if (!user) return done;
    if (user.metadata.deletionTimestamp) return await finalize(user);
    try {
      const r = await converge(user, ctx.logger, ctx.signal);
      const wasReady = user.status?.phase === "Ready";
      await writeStatus(user, {
        ready: { reason: "Ready", message: `Role ${JSON.stringify(usernameOf(user))} is ready` },
        clusterName: r.clusterName,
        secretNames: r.secretNames,
        activeRole: r.state.role,
        passwordUpdatedAt: r.state.updatedAt,
        lastRotateRequest: r.state.lastRequest,
        nextRotation: r.next,
      });
      if (!wasReady) recorder.emit(user, "Normal", "Ready", "Role, grants and Secret are ready");
      return r.next === undefined ? done : requeueAfter(untilRotation(r.next, clock.now()));
    } catch (e) {
      if (e instanceof ConflictError) throw e;
      const reason = e instanceof TerminalError || e instanceof RetryableError
        ? e.reason
        : e instanceof Error && e.name === "InvalidIdentifierError"
        ? "InvalidUsername"
        : "ReconcileFailed";
      const terminal = e instanceof TerminalError || reason === "InvalidUsername";
      const message = errorMessage(e);
      if (user.status?.conditions?.find((x) => x.type === "Ready")?.reason !== reason) {
        recorder.emit(user, "Warning", reason, message);
      }
      await writeStatus(user, { ready: { reason, message, terminal } });
      if (terminal && !(e instanceof TerminalError)) throw new TerminalError(reason, message);
      throw e;
    }
  };

  const controller = addController(deps, "databaseuser", reconcile);
  controller.watch(users);
  controller.watch(
    databases,
    (db) =>
      users.list().filter((u) =>
        databaseEntries(u).some((e) =>
          e.name === db.metadata.name && e.namespace === db.metadata.namespace
        )
      ).map(objectKey),
  );
  // A server that comes back (or goes away) concerns every user on it at once, not after each
  // user's backoff has run out.
  controller.watch(
    clusters,
    (c, old, deleted) =>
      deleted || clusterChangeMatters(c, old)
        ? usersOfCluster(users.list(), databases.list(), c.metadata.name)
        : [],
  );
  controller.watch(secrets, (s) =>
    (s.metadata.ownerReferences ?? [])
      .filter((r) => r.kind === DatabaseUserKind.kind && s.metadata.namespace)
      .map((r) => `${s.metadata.namespace}/${r.name}`));
  return controller;
}
