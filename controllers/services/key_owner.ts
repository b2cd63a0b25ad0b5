/**
 * Whose objects are at a Backup's key. Storage never overwrites, so before a run writes its
 * key it must know what is there: its own complete backup (a run that finished but was not
 * recorded), its own leftovers (a dump without manifest, to delete), or another writer's
 * objects, which are never adopted and never deleted.
 *
 * A dump object names its writer in its metadata (`dbtether-backup-uid`, written since
 * no-overwrite), a manifest in `source.backupUid`. Anything without our uid is someone
 * else's. Messages name another writer only inside this Backup's namespace: a tenant learns
 * nothing about other namespaces from a collision.
 */
import { type BackupManifest, manifestKey, parseManifest } from "../../backup/manifest.ts";
import { type CallOptions, type ObjectStore, StorageError } from "../../storage/store.ts";

/** Object metadata naming the Backup that wrote a dump. */
export const BACKUP_UID_METADATA = "dbtether-backup-uid";

/** What is at a key: the dump object and the manifest beside it. */
export interface KeyObservation {
  key: string;
  dump: { size: number; metadata: Record<string, string> } | undefined;
  /** `unreadable`: an object at the manifest key that is not a manifest. */
  manifest: { parsed: BackupManifest } | { unreadable: true } | undefined;
}

/** The Backup asking. */
export interface KeyClaimant {
  uid: string;
  namespace: string;
  name: string;
}

export type KeyState =
  | { kind: "free" }
  /** This Backup's complete backup: record it instead of dumping again. */
  | { kind: "complete"; manifest: BackupManifest }
  /** This Backup's incomplete leftovers: delete them, then dump. */
  | { kind: "leftovers"; dump: boolean; manifest: boolean }
  /** Another writer's objects: fail with ObjectExists. */
  | { kind: "taken"; message: string };

/** Decides what a Backup does with its key (pure). */
export function classifyKey(o: KeyObservation, me: KeyClaimant): KeyState {
  const manifest = o.manifest && "parsed" in o.manifest ? o.manifest.parsed : undefined;
  const dumpUid = o.dump?.metadata[BACKUP_UID_METADATA];
  const ourManifest = manifest?.source?.backupUid === me.uid;
  const ourDump = dumpUid === me.uid;
  if (o.manifest && !ourManifest) {
    return taken(o.key, me, manifest?.source ?? {});
  }
  // A dump that names another writer is theirs, even beside a manifest of ours.
  if (o.dump && dumpUid !== undefined && !ourDump) return taken(o.key, me, writerOf(o.dump));
  if (ourManifest) {
    if (o.dump && o.dump.size === manifest!.compressedSize) {
      return { kind: "complete", manifest: manifest! };
    }
    return { kind: "leftovers", manifest: true, dump: o.dump !== undefined };
  }
  if (o.dump && !ourDump) return taken(o.key, me, writerOf(o.dump));
  if (o.dump) return { kind: "leftovers", manifest: false, dump: true };
  return { kind: "free" };
}

/** The message of a Backup refused because another writer's object is at its key. */
export function takenMessage(
  key: string,
  me: KeyClaimant,
  writer: { namespace?: string | undefined; backup?: string | undefined },
): string {
  let who = "not by a dbtether Backup";
  if (writer.namespace && writer.namespace !== me.namespace) {
    who = "by a Backup of another namespace";
  } else if (writer.namespace && writer.backup) {
    who = writer.backup === me.name
      ? `by an earlier Backup named "${writer.backup}"`
      : `by Backup "${writer.backup}"`;
  } else if (writer.namespace) {
    who = "by another Backup";
  }
  return `An object already exists at ${key}, written ${who}; stored backups are never ` +
    `overwritten: include {{ .RunID }} in filenameTemplate so that each Backup writes its own key`;
}

function taken(
  key: string,
  me: KeyClaimant,
  writer: { namespace?: string | undefined; backup?: string | undefined },
): KeyState {
  return { kind: "taken", message: takenMessage(key, me, writer) };
}

function writerOf(dump: { metadata: Record<string, string> }) {
  return {
    namespace: dump.metadata["dbtether-namespace"],
    backup: dump.metadata["dbtether-backup"],
  };
}

/** Reads what is at `key` and beside it (head of the dump, the manifest's text). */
export async function observeKey(
  store: ObjectStore,
  key: string,
  opts: CallOptions = {},
): Promise<KeyObservation> {
  const head = await store.head(key, opts);
  const dump = head ? { size: head.size, metadata: head.metadata } : undefined;
  let manifest: KeyObservation["manifest"];
  try {
    const text = await new Response(await store.get(manifestKey(key), opts)).text();
    try {
      manifest = { parsed: parseManifest(text) };
    } catch {
      manifest = { unreadable: true };
    }
  } catch (e) {
    if (!(e instanceof StorageError && e.reason === "NotFound")) throw e;
  }
  return { key, dump, manifest };
}
