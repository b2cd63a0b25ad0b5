/**
 * The manifest: a small JSON object written after the dump object is complete. Its presence is
 * what marks a backup complete; a dump without a manifest is an interrupted backup.
 */
import type { DumpFormat } from "./dump_command.ts";

export const MANIFEST_SUFFIX = ".manifest.json";

/**
 * Which resource wrote a backup (set by the Backup controller; absent for `dbtether backup` from a
 * terminal). Restores use it to refuse another namespace's backups, and a retried Backup to tell
 * its own complete upload from another Backup's at the same key.
 */
export interface BackupSource {
  /** Namespace of the Backup (and of its Database). */
  namespace: string;
  /** Name and uid of the Backup resource. */
  backup: string;
  backupUid: string;
  /** Name of the Database resource dumped. */
  databaseResource: string;
  /** The DBCluster the database lives on. */
  cluster: string;
}

export interface BackupManifest {
  manifestVersion: 1;
  /** The dump object's key. */
  key: string;
  format: DumpFormat;
  /** "gzip" for plain (compressed by dbtether); "pg_dump" for custom (pg_dump compresses). */
  compression: "gzip" | "pg_dump";
  compressionLevel: number;
  /** Bytes pg_dump wrote (for custom format, already compressed by pg_dump). */
  uncompressedSize: number;
  /** Bytes stored at `key`. */
  compressedSize: number;
  /** Hex SHA-256 of the stored bytes. */
  sha256: string;
  pgDumpVersion: string;
  serverVersion: string;
  database: string;
  startedAt: string;
  completedAt: string;
  durationMs: number;
  /** Who wrote it; see {@link BackupSource}. */
  source?: BackupSource;
}

export function manifestKey(key: string): string {
  return key + MANIFEST_SUFFIX;
}

export function isManifestKey(key: string): boolean {
  return key.endsWith(MANIFEST_SUFFIX);
}

export function encodeManifest(m: BackupManifest): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify(m, null, 2) + "\n");
}

/** Parses and checks a manifest; throws Error with a clear message when it is not one. */
export function parseManifest(text: string): BackupManifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`Invalid backup manifest: ${(e as Error).message}`);
  }
  const m = v as Partial<BackupManifest> | null;
  if (
    !m || m.manifestVersion !== 1 || typeof m.key !== "string" ||
    (m.format !== "plain" && m.format !== "custom") ||
    typeof m.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(m.sha256) ||
    typeof m.compressedSize !== "number"
  ) {
    throw new Error("Invalid backup manifest: missing or malformed fields");
  }
  return m as BackupManifest;
}
