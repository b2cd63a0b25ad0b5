/**
 * Which events concern which DatabaseUsers: the user itself, the Databases it names, a DBCluster
 * whose change matters to everyone on it (services/cluster_changes.ts), and the Secrets it owns.
 * Events only say "look again"; the reconcile reads the current state.
 */
import type { BackupStorage } from "../../crds/backup_storage.ts";
import { BackupStorageKind } from "../../crds/backup_storage.ts";
import { type Database, DatabaseKind } from "../../crds/database.ts";
import { type DBCluster, DBClusterKind } from "../../crds/dbcluster.ts";
import { type DatabaseUser, DatabaseUserKind } from "../../crds/database_user.ts";
import type { KubeObject } from "../runtime/types.ts";
import { objectKey } from "../runtime/informer.ts";
import { getCondition } from "../runtime/conditions.ts";
import { OWNER_UID_INDEX, ownerUids, ownUid, UID_INDEX } from "../runtime/indexes.ts";
import { DATABASE_CLUSTER_INDEX, databaseCluster } from "../services/indexes.ts";
import { SecretResource } from "../runtime/kube.ts";
import type { Watches } from "../runtime/reconciler.ts";
import type { ControllerDeps, InformerSet, SharedInformers } from "../runtime/shared.ts";
import { clusterChangeMatters } from "../services/cluster_changes.ts";
import { isCopyOf, SOURCE_UID_LABEL } from "./delivery.ts";
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from "./secret.ts";
import { databaseEntries } from "./spec.ts";

/** A Secret's metadata, as the metadata-only informer holds it. */
export type SecretMeta = KubeObject<unknown, unknown>;

/** The shared informers the DatabaseUser controller reads. */
export interface UserInformers {
  users: InformerSet<DatabaseUser>;
  databases: InformerSet<Database>;
  clusters: InformerSet<DBCluster>;
  storages: InformerSet<BackupStorage>;
  /** Metadata is enough: Secrets are read on demand; this says which exist and changed. */
  secrets: InformerSet<SecretMeta>;
}

/** Users by `namespace/name` of each Database they name. */
export const USER_DATABASE_INDEX = "database";
/** Users by the DBCluster their status records (it outlives a deleted Database). */
export const USER_CLUSTER_INDEX = "statusCluster";
/** Secrets by the source uid label of a delivered copy ({@link SOURCE_UID_LABEL}). */
export const SOURCE_UID_INDEX = "sourceUid";

function userDatabases(u: DatabaseUser): string[] {
  return databaseEntries(u).map((e) => `${e.namespace}/${e.name}`);
}

function userStatusCluster(u: DatabaseUser): string[] {
  return u.status?.clusterName ? [u.status.clusterName] : [];
}

/** The source uid label of a delivered copy, as the index holds it. */
export function secretSourceUid(s: SecretMeta): string[] {
  const uid = s.metadata.labels?.[SOURCE_UID_LABEL];
  return uid ? [uid] : [];
}

/**
 * The informers of {@link UserInformers}, created once and shared with other controllers, with
 * the indexes that let one event or pass find its objects without scanning every user or Secret.
 */
export function userInformers(informers: SharedInformers): UserInformers {
  return {
    users: informers.for<DatabaseUser>(DatabaseUserKind)
      .withIndex(USER_DATABASE_INDEX, userDatabases)
      .withIndex(USER_CLUSTER_INDEX, userStatusCluster)
      .withIndex(UID_INDEX, ownUid),
    databases: informers.for<Database>(DatabaseKind)
      .withIndex(DATABASE_CLUSTER_INDEX, databaseCluster),
    clusters: informers.for<DBCluster>(DBClusterKind),
    storages: informers.for<BackupStorage>(BackupStorageKind),
    secrets: informers.for<SecretMeta>(SecretResource, {
      labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
      metadataOnly: true,
    }).withIndex(OWNER_UID_INDEX, ownerUids).withIndex(SOURCE_UID_INDEX, secretSourceUid),
  };
}

/** The Secrets (metadata) with an ownerReference to `uid`. */
export function secretsOwnedBy(i: Pick<UserInformers, "secrets">, uid: string | undefined) {
  return uid ? i.secrets.byIndex(OWNER_UID_INDEX, uid) : [];
}

/** The Secrets (metadata) labelled as copies of the user of `uid` (not yet checked by isCopyOf). */
export function copiesLabelled(i: Pick<UserInformers, "secrets">, uid: string | undefined) {
  return uid ? i.secrets.byIndex(SOURCE_UID_INDEX, uid) : [];
}

/** {@link usersOfCluster} on the indexes: only the users and Databases on cluster `name`. */
function usersOfClusterIndexed(i: UserInformers, name: string): string[] {
  const databases = i.databases.byIndex(DATABASE_CLUSTER_INDEX, name);
  const users = new Map<string, DatabaseUser>();
  for (const u of i.users.byIndex(USER_CLUSTER_INDEX, name)) users.set(objectKey(u), u);
  for (const d of databases) {
    for (const u of i.users.byIndex(USER_DATABASE_INDEX, objectKey(d))) users.set(objectKey(u), u);
  }
  return usersOfCluster([...users.values()], databases, name);
}

/**
 * Keys of the DatabaseUsers on DBCluster `name`: through their Databases (from the informer
 * cache), or the cluster recorded in their status when a Database is gone.
 */
export function usersOfCluster(
  users: readonly DatabaseUser[],
  databases: readonly Database[],
  name: string,
): string[] {
  const onCluster = new Set(
    databases.filter((d) => d.spec.clusterRef.name === name).map(objectKey),
  );
  return users.filter((u) =>
    u.status?.clusterName === name ||
    databaseEntries(u).some((e) => onCluster.has(`${e.namespace}/${e.name}`))
  ).map(objectKey);
}

/** Keys of the users that name Database `db`. */
export function usersOfDatabase(users: readonly DatabaseUser[], db: Database): string[] {
  return users.filter((u) =>
    databaseEntries(u).some((e) =>
      e.name === db.metadata.name && e.namespace === db.metadata.namespace
    )
  ).map(objectKey);
}

/**
 * Keys of the DatabaseUsers that own Secret `s`, or whose delivered copy it is (labelled with
 * the source uid and namespace: a copy has no ownerReference).
 */
export function ownersOfSecret(s: SecretMeta, users: readonly DatabaseUser[] = []): string[] {
  const owners = (s.metadata.ownerReferences ?? [])
    .filter((r) => r.kind === DatabaseUserKind.kind && s.metadata.namespace)
    .map((r) => `${s.metadata.namespace}/${r.name}`);
  if (!s.metadata.labels?.[SOURCE_UID_LABEL]) return owners;
  return [...owners, ...users.filter((u) => isCopyOf(s, u)).map(objectKey)];
}

/**
 * Whether a Database's update can change what its users' passes do: its spec, deletion, the name
 * in use, or its Ready condition (status, reason, message, and the generation it speaks for: a
 * schema added to the spec is there once that moves). Not its finalizer being added, its phase
 * alone, or a label: each of those woke every waiting user for a pass that only found the
 * Database as it was (issue 12). A create or delete always matters.
 */
export function databaseChangeMattersToUsers(db: Database, old: Database | undefined): boolean {
  if (!old) return true;
  if (db.metadata.generation !== old.metadata.generation) return true;
  if (db.metadata.deletionTimestamp !== old.metadata.deletionTimestamp) return true;
  if (db.status?.databaseName !== old.status?.databaseName) return true;
  const a = getCondition(db.status?.conditions, "Ready");
  const b = getCondition(old.status?.conditions, "Ready");
  return a?.status !== b?.status || a?.reason !== b?.reason || a?.message !== b?.message ||
    a?.observedGeneration !== b?.observedGeneration;
}

/**
 * The events that re-queue DatabaseUsers. `echo` says a Secret event is only the echo of the
 * reconciler's own write of it (SecretReads.echo; it calls `wake` later if it cannot tell yet):
 * the pass that wrote it already went on, or requeued itself, so the echo starts no pass. A
 * deletion or anyone else's change does.
 */
export function databaseUserWatches(
  deps: Pick<ControllerDeps, "informers">,
  o: { echo?: (s: SecretMeta, wake: () => void) => boolean } = {},
): Watches {
  const i = userInformers(deps.informers);
  return (controller) => {
    controller.watch(i.users);
    controller.resync(i.users);
    controller.watch(
      i.databases,
      (db, old, deleted) =>
        deleted || databaseChangeMattersToUsers(db, old)
          ? usersOfDatabase(i.users.byIndex(USER_DATABASE_INDEX, objectKey(db)), db)
          : [],
    );
    // A server that comes back (or goes away) concerns every user on it at once, not after each
    // user's backoff has run out.
    controller.watch(
      i.clusters,
      (c, old, deleted) =>
        deleted || clusterChangeMatters(c, old) ? usersOfClusterIndexed(i, c.metadata.name) : [],
    );
    controller.watch(i.secrets, (s, _old, deleted) => {
      const source = s.metadata.labels?.[SOURCE_UID_LABEL];
      const keys = ownersOfSecret(s, source ? i.users.byIndex(UID_INDEX, source) : []);
      if (!keys.length || deleted) return keys;
      return o.echo?.(s, () => keys.forEach((k) => controller.enqueue(k))) ? [] : keys;
    });
  };
}
