/**
 * The codecs a plain dump is stored with, their levels and their magic bytes. Light on purpose
 * (no node:zlib): the CRD schemas import the names and ranges from here.
 *
 * A stored object's codec is told by its manifest and by its first bytes, never by its name: a
 * filenameTemplate may call a zstd dump `x.sql.gz`, and someone may upload anything to a key.
 */

/** The compression algorithms of `spec.compression.algorithm`. */
export const COMPRESSION_ALGORITHMS = ["gzip", "zstd"] as const;
/** A compression algorithm. */
export type CompressionAlgorithm = typeof COMPRESSION_ALGORITHMS[number];

/** Level range and default per algorithm (gzip's 0 stores; zstd's 1-19 are its normal levels). */
export const COMPRESSION_LEVELS: Readonly<
  Record<CompressionAlgorithm, { min: number; max: number; default: number }>
> = {
  gzip: { min: 0, max: 9, default: 6 },
  zstd: { min: 1, max: 19, default: 3 },
};

/** The level a Backup that sets none gets. */
export function defaultLevel(algorithm: CompressionAlgorithm = "gzip"): number {
  return COMPRESSION_LEVELS[algorithm].default;
}

/** Why `level` is not a level of `algorithm`, or undefined when it is one. */
export function levelProblem(algorithm: string, level: number): string | undefined {
  if (!isCompressionAlgorithm(algorithm)) {
    return `unknown compression algorithm "${algorithm}" (use ${
      COMPRESSION_ALGORITHMS.join(" or ")
    })`;
  }
  const r = COMPRESSION_LEVELS[algorithm];
  if (!Number.isInteger(level) || level < r.min || level > r.max) {
    return `invalid ${algorithm} level ${level} (use ${r.min} to ${r.max})`;
  }
  return undefined;
}

export function isCompressionAlgorithm(v: unknown): v is CompressionAlgorithm {
  return (COMPRESSION_ALGORITHMS as readonly unknown[]).includes(v);
}

/** Suffix of a plain dump's default filename per algorithm (gzip's is what dbtether always used). */
export const PLAIN_EXTENSIONS: Readonly<Record<CompressionAlgorithm, string>> = {
  gzip: ".sql.gz",
  zstd: ".sql.zst",
};

/** Content-Type of a stored plain dump. */
export const CONTENT_TYPES: Readonly<Record<CompressionAlgorithm, string>> = {
  gzip: "application/gzip",
  zstd: "application/zstd",
};

const GZIP_MAGIC = [0x1f, 0x8b] as const;
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd] as const;

/** The bytes that open a stream of `algorithm` (a gzip member, a zstd frame). */
export function magicBytes(algorithm: CompressionAlgorithm): readonly number[] {
  return algorithm === "gzip" ? GZIP_MAGIC : ZSTD_MAGIC;
}

/** Bytes {@link detectAlgorithm} needs to decide. */
export const MAGIC_LENGTH = ZSTD_MAGIC.length;

/** The codec `head` (the first bytes of an object) opens with, or undefined for neither. */
export function detectAlgorithm(head: Uint8Array): CompressionAlgorithm | undefined {
  const starts = (m: readonly number[]) => m.every((b, i) => head[i] === b);
  if (starts(GZIP_MAGIC)) return "gzip";
  if (starts(ZSTD_MAGIC)) return "zstd";
  return undefined;
}
