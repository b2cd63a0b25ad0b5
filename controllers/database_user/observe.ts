/**
 * The read step of a DatabaseUser pass, shared by the reconciler and `dbtether plan`: the
 * credentials context (with the DBCluster's adoption answer when asked), then what the planner
 * needs — the wanted Secrets and the record read through the API, the Secrets the user owns, who
 * else reads a Secret name, and an old Secret's password when the record holds none. Reads only.
 */
import type { DatabaseUser } from "../../crds/database_user.ts";
import type { DBCluster } from "../../crds/dbcluster.ts";
import type { KubeObject } from "../../crds/kind.ts";
import type { PgExecutor } from "../postgres/execute.ts";
import { type KubeClient, SecretResource } from "../runtime/kube.ts";
import { adoptionConsent } from "../services/adoption.ts";
import type { ResolvedCluster } from "../services/resolver.ts";
import { referencedBy } from "../services/secret_owner.ts";
import type { SecretReads } from "../services/secret_reads.ts";
import { type CredentialsContext, importFromSecret } from "./credentials.ts";
import { deliveryAllowed, deliveryNamespace, isCopyOf } from "./delivery.ts";
import { importCandidate, type ObservedUser } from "./plan.ts";
import { isOurs, type Secret } from "./secret.ts";
import { secretTargets } from "./secret_plan.ts";
import { ADOPT_ANNOTATION, type DatabaseTarget, ownerRefOf, ROTATE_ANNOTATION } from "./spec.ts";
import { isIamUser, usernameOf } from "./spec.ts";
import { parseState, stateSecretName } from "./state.ts";

/** Builds the context of a pass; reads the adoption consent when the user asks to adopt. */
export async function userContext(
  user: DatabaseUser,
  o: {
    targets: DatabaseTarget[];
    resolved: ResolvedCluster;
    client: KubeClient;
    exec: PgExecutor;
    now: () => number;
    signal: AbortSignal;
  },
): Promise<CredentialsContext> {
  const { client, resolved, signal } = o;
  return {
    user,
    ownerRef: ownerRefOf(user),
    username: usernameOf(user),
    targets: o.targets,
    client,
    pool: resolved.pool,
    exec: o.exec,
    now: o.now,
    signal,
    cluster: {
      name: resolved.cluster.metadata.name,
      grantableRoles: resolved.cluster.spec.grantableRoles ?? [],
      allowedRoleSettings: resolved.cluster.spec.allowedRoleSettings ?? [],
    },
    ...(user.metadata.annotations?.[ADOPT_ANNOTATION] === "true"
      ? {
        consent: await adoptionConsent(client, {
          cluster: resolved.cluster,
          namespace: user.metadata.namespace ?? "default",
          signal,
        }),
      }
      : {}),
  };
}

/** Where a user's Secrets say to connect: the DBCluster's endpoint, and its reader endpoint. */
export function secretEndpoints(resolved: Pick<ResolvedCluster, "cluster" | "server">) {
  const { host, port } = resolved.server;
  const r = resolved.cluster.spec.readerEndpoint;
  const auth = resolved.cluster.spec.authentication;
  const region = auth?.type === "awsIam" ? auth.region : undefined;
  return {
    host,
    port,
    ...(r ? { reader: { host: r.host, port: r.port ?? port } } : {}),
    ...(region ? { region } : {}),
  };
}

/** What {@link observeUser} reads besides the API: the caller's view of the cluster. */
export interface UserSources {
  clusterName: string;
  server: ObservedUser["server"];
  /** The Secrets the user owns (see {@link ownedSecrets}). */
  owned: readonly Secret[];
  /** Cluster-scoped resources reading the Secret `name` of the user's namespace. */
  readers: (name: string) => string[];
  /** The user's DBCluster, whose spec.secretDelivery permits cross-namespace copies. */
  cluster: Pick<DBCluster, "spec">;
  /** Every delivered copy of the user's Secrets (delivery.ts isCopyOf); unknown: none. */
  copies?: readonly Secret[];
  now: number;
  /** Reads Secrets once per resourceVersion; without it (`dbtether plan`) every read is a GET. */
  reads?: SecretReads;
}

/**
 * Reads what the planner needs: the wanted Secrets and the record (through `o.reads`, which
 * serves a Secret from memory only while the informer shows the resourceVersion it was read or
 * written at, so a write of the previous pass is never missed), and — only when the record holds
 * no password — whether an old application Secret's password still logs in.
 */
export async function observeUser(
  c: CredentialsContext,
  o: UserSources,
): Promise<ObservedUser> {
  const { user, signal, client } = c;
  const namespace = user.metadata.namespace;
  const wanted = secretTargets(user, c.targets);
  const find = (name: string, ns = namespace) =>
    o.reads && ns
      ? o.reads.find<Secret>({ signal, namespace: ns, name })
      : client.find<Secret>(SecretResource, { signal, namespace: ns, name });
  const existing = new Map<string, Secret>();
  for (const w of wanted) {
    const s = await find(w.name);
    if (s) existing.set(w.name, s);
  }
  const record = await find(stateSecretName(user));
  const observed: ObservedUser = {
    user,
    targets: c.targets,
    clusterName: o.clusterName,
    server: o.server,
    record,
    existing,
    owned: o.owned,
    readers: new Map(wanted.map((w) => [w.name, o.readers(w.name)])),
    delivery: await observeDelivery(c, {
      wanted,
      cluster: o.cluster,
      copies: o.copies ?? [],
      find,
    }),
    now: o.now,
  };
  const ours = !record || isOurs(record, user);
  // An IAM user has no password to import.
  const candidate = ours && !isIamUser(user)
    ? importCandidate(observed, parseState(record))
    : undefined;
  if (candidate !== undefined) {
    const state = await importFromSecret(c, existing.get(candidate)!, {
      lastRequest: user.metadata.annotations?.[ROTATE_ANNOTATION],
      updatedAt: user.status?.passwordUpdatedAt,
    });
    observed.imported = { secret: candidate, state };
  }
  return observed;
}

/**
 * The delivery of spec.secret.namespace: whether the pair is permitted, and — only then, so a
 * refused pair reads nothing there — the Secrets of the wanted names in the target namespace.
 */
async function observeDelivery(
  c: CredentialsContext,
  o: {
    wanted: readonly { name: string }[];
    cluster: Pick<DBCluster, "spec">;
    copies: readonly Secret[];
    /** Reads a Secret of a namespace (once per resourceVersion when the caller can). */
    find: (name: string, namespace: string) => Promise<Secret | undefined>;
  },
): Promise<ObservedUser["delivery"]> {
  const { user } = c;
  const to = deliveryNamespace(user);
  const from = user.metadata.namespace ?? "default";
  const allowed = to !== undefined && deliveryAllowed(o.cluster, { from, to });
  const existing = new Map<string, Secret>();
  if (allowed) {
    for (const w of o.wanted) {
      const s = await o.find(w.name, to);
      if (s) existing.set(w.name, s);
    }
  }
  return { to, allowed, existing, copies: o.copies.filter((s) => isCopyOf(s, user)) };
}

/** The Secrets among `secrets` that `u` owns (an ownerReference to its uid, same namespace). */
export function ownedSecrets(
  u: DatabaseUser,
  secrets: readonly KubeObject<unknown, unknown>[],
): Secret[] {
  return secrets.filter((s) =>
    s.metadata.namespace === u.metadata.namespace &&
    (s.metadata.ownerReferences ?? []).some((r) => r.uid === u.metadata.uid)
  ) as Secret[];
}

/** DBClusters and BackupStorages that read the Secret `name` of `namespace`. */
export function secretReaders(
  ref: { namespace: string | undefined; name: string },
  o: { clusters: Parameters<typeof referencedBy>[1]; storages: Parameters<typeof referencedBy>[1] },
): string[] {
  const r = { namespace: ref.namespace ?? "default", name: ref.name };
  return [
    ...referencedBy("DBCluster", o.clusters, r),
    ...referencedBy("BackupStorage", o.storages, r),
  ];
}
