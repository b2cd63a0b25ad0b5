/**
 * The manifest: a small JSON object written after the dump object is complete. Its presence is
 * what marks a backup complete; a dump without a manifest is an interrupted backup.
 *
 * Manifests the operator writes carry an HMAC-SHA-256 `signature` over their canonical form
 * (every field but the signature, keys sorted), so a Restore can tell the operator's own
 * backups from objects someone else put into the bucket: the signature covers the dump's
 * SHA-256 and size, its key and format, and the source namespace, Backup and Database.
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { DumpFormat } from "./dump_command.ts";
import { type CompressionAlgorithm, isCompressionAlgorithm } from "./compression.ts";
import type { TableCounts } from "./table_counts.ts";

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
  /**
   * Who compressed: for plain, the codec dbtether compressed with ("gzip" or "zstd"); "pg_dump"
   * for custom (pg_dump compresses inside its archive).
   */
  compression: CompressionAlgorithm | "pg_dump";
  /**
   * The codec, for both formats (for custom, the one pg_dump used). Absent in manifests written
   * before zstd existed: those are gzip.
   */
  compressionAlgorithm?: CompressionAlgorithm;
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
  /**
   * Tables and rows, counted in the snapshot pg_dump dumped (exact); absent when the backup ran
   * without an exported snapshot or the count failed or was over its bound.
   */
  counts?: TableCounts;
  /** The operator's signature; see {@link signManifest}. */
  signature?: ManifestSignature;
}

/** An HMAC-SHA-256 over {@link canonicalManifest}. */
export interface ManifestSignature {
  algorithm: "HMAC-SHA256";
  /** Which key signed (see {@link signingKey}); lets a rotated key set pick the right one. */
  keyId: string;
  /** Hex HMAC. */
  value: string;
}

/** A signing key: its bytes and a public identifier derived from them. */
export interface SigningKey {
  /** First 16 hex digits of the SHA-256 of the key; safe to show, useless to forge with. */
  id: string;
  bytes: Uint8Array;
}

/** The shortest key accepted for signing or verifying (32 bytes is what the operator makes). */
export const MIN_SIGNING_KEY_BYTES = 32;

/** A {@link SigningKey} from raw bytes; throws RangeError when they are too short. */
export function signingKey(bytes: Uint8Array): SigningKey {
  if (bytes.length < MIN_SIGNING_KEY_BYTES) {
    throw new RangeError(
      `Invalid signing key: ${bytes.length} bytes, at least ${MIN_SIGNING_KEY_BYTES} are needed`,
    );
  }
  const id = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  return { id, bytes };
}

/**
 * The bytes a signature covers: the manifest without `signature`, as JSON with object keys
 * sorted at every level (so re-encoding, field order and whitespace do not matter).
 */
export function canonicalManifest(m: object): string {
  const { signature: _s, ...rest } = m as { signature?: unknown };
  return canonicalJson(rest);
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

function hmac(key: SigningKey, m: object): string {
  return createHmac("sha256", key.bytes).update(canonicalManifest(m)).digest("hex");
}

/** `m` with a signature by `key` (any previous signature replaced). */
export function signManifest(m: BackupManifest, key: SigningKey): BackupManifest {
  const { signature: _s, ...rest } = m;
  return {
    ...rest,
    signature: { algorithm: "HMAC-SHA256", keyId: key.id, value: hmac(key, rest) },
  };
}

/**
 * How a manifest's signature checks against `keys`: `valid`, `unsigned` (no signature),
 * `unknownKey` (signed by a key not among them: rotated out, or another operator's), or
 * `invalid` (the manifest or its signature was changed).
 */
export type SignatureVerdict = "valid" | "unsigned" | "unknownKey" | "invalid";

/** Checks the signature of a parsed manifest (verify what was read, not a re-encoding). */
export function verifyManifest(m: BackupManifest, keys: readonly SigningKey[]): SignatureVerdict {
  const sig = m.signature as Partial<ManifestSignature> | undefined;
  if (sig === undefined) return "unsigned";
  if (
    sig === null || typeof sig !== "object" || sig.algorithm !== "HMAC-SHA256" ||
    typeof sig.keyId !== "string" || typeof sig.value !== "string" ||
    !/^[0-9a-f]{64}$/.test(sig.value)
  ) return "invalid";
  const key = keys.find((k) => k.id === sig.keyId);
  if (!key) return "unknownKey";
  const want = Buffer.from(hmac(key, m), "hex");
  const have = Buffer.from(sig.value, "hex");
  return want.length === have.length && timingSafeEqual(want, have) ? "valid" : "invalid";
}

/** The codec a manifest records (gzip for manifests older than the field). */
export function manifestAlgorithm(m: BackupManifest): CompressionAlgorithm {
  if (m.compressionAlgorithm) return m.compressionAlgorithm;
  return m.compression === "zstd" ? "zstd" : "gzip";
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
    typeof m.compressedSize !== "number" ||
    (m.compressionAlgorithm !== undefined && !isCompressionAlgorithm(m.compressionAlgorithm))
  ) {
    throw new Error("Invalid backup manifest: missing or malformed fields");
  }
  return m as BackupManifest;
}
