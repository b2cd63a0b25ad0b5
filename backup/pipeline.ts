/**
 * The backup engine: pg_dump's stdout → gzip → count + SHA-256 → `store.put`, in-process.
 *
 * Failure semantics (see docs/design/in_process_backups.md):
 * - The stream handed to `put` ends cleanly only after pg_dump exited 0. A pg_dump that fails
 *   or is killed closes its stdout like a finished one; we hold the end of the stream until the
 *   exit status is known and turn a failure into a stream error, so the store discards the
 *   upload and nothing appears at the key.
 * - A failed or aborted upload kills pg_dump. The first failure decides the reason.
 * - The manifest is written last; its presence marks a complete backup. If it cannot be written
 *   the dump object is deleted. Storage never overwrites: a key that holds an object (dump or
 *   manifest) fails the backup with StorageError AlreadyExists as the cause.
 */
import { type Clock, systemClock } from "../lib/clock.ts";
import { errorMessage } from "../lib/errors.ts";
import { type Logger, nullLogger } from "../lib/log.ts";
import type { ObjectStore } from "../storage/store.ts";
import {
  buildDumpCommand,
  connectionSecrets,
  type DumpFormat,
  type PgConnection,
  toolProcess,
} from "./dump_command.ts";
import { BackupError, jobFailures, withStderr } from "./errors.ts";
import { type BackupManifest, type BackupSource, encodeManifest, manifestKey } from "./manifest.ts";
import { type PgToolset, resolveTools, type ToolJobOptions } from "./resolve_tools.ts";
import { StderrTail } from "./stderr_tail.ts";
import { parallelCompress } from "./parallel_compress.ts";
import { compressFromPipe, Meter, onAbort, progressReporter, tap } from "./streams.ts";
import {
  type CompressionAlgorithm,
  CONTENT_TYPES,
  defaultLevel,
  levelProblem,
} from "./compression.ts";
import { assertSafeKey, TemplateError } from "./templates.ts";
import type { TableCounts } from "./table_counts.ts";
import { stallOf } from "../storage/stall_guard.ts";

/** The failures a backup shares with a restore, as BackupErrors. */
const failures = jobFailures(BackupError, { name: "Backup", fallback: "DumpFailed" });
const { aborted } = failures;

/** `<what>: <the storage failure>`: StorageStalled for a stall, else StorageFailed. */
function storageFailed(what: string, e: unknown): BackupError {
  const stall = stallOf(e);
  if (stall) {
    return new BackupError("StorageStalled", `${what}: ${stall.message}`, { cause: stall });
  }
  return failures.storageFailed(what, e);
}

/** Default of {@link BackupOptions.gzipWorkers}: measured best on 2 cores (bench/RESULTS.md). */
export const DEFAULT_GZIP_WORKERS = 2;
const MAX_GZIP_WORKERS = 16;

export interface BackupProgress {
  /** Bytes pg_dump wrote so far. */
  uncompressedBytes: number;
  /** Bytes handed to storage so far. */
  compressedBytes: number;
  elapsedMs: number;
}

/** Options of {@link runBackup}. */
export interface BackupOptions extends ToolJobOptions<Omit<BackupProgress, "elapsedMs">> {
  connection: PgConnection;
  store: ObjectStore;
  /** Final object key (see templates.ts); the manifest goes to `<key>.manifest.json`. */
  key: string;
  /** Default plain. */
  format?: DumpFormat;
  /**
   * The codec: dbtether's for plain, pg_dump's inside a custom archive (zstd there needs
   * pg_dump 16 or newer). Default gzip.
   */
  compression?: CompressionAlgorithm;
  /** The codec's level (gzip 0-9, default 6; zstd 1-19, default 3). */
  compressionLevel?: number;
  /**
   * Workers compressing a plain dump in parallel (independent 1 MiB gzip members or zstd
   * frames, see parallel_compress.ts); 0 compresses on the calling thread as one member.
   * Default 2. (Named for gzip, which came first; it applies to zstd alike.)
   */
  gzipWorkers?: number;
  includeOwnership?: boolean;
  lockWaitTimeoutSeconds?: number;
  /** Extra metadata stored with the dump object. */
  metadata?: Record<string, string>;
  /** Recorded in the manifest: the resource this backup is for. */
  source?: BackupSource;
  /**
   * Signs the manifest before it is written (the operator's HMAC, backup/manifest.ts). A failure
   * fails the backup with SigningFailed and leaves no object, like a failed manifest write.
   */
  signManifest?: (m: BackupManifest) => Promise<BackupManifest>;
  /** Dump in this snapshot and record its counts in the manifest. */
  snapshot?: DumpSnapshot;
}

/**
 * A snapshot exported by a session that stays in its transaction for the whole dump
 * (`pg_export_snapshot()`): pg_dump dumps exactly what that session sees (`--snapshot`), and the
 * session counts the same rows.
 */
export interface DumpSnapshot {
  /** The snapshot's identifier, as `pg_export_snapshot()` returned it. */
  id: string;
  /** The counts in that snapshot; undefined when counting failed or was over its bound. */
  counts: () => Promise<TableCounts | undefined>;
}

export interface BackupResult {
  key: string;
  manifestKey: string;
  manifest: BackupManifest;
}

/** Runs one backup; throws BackupError (with a reason) on any failure, leaving no object. */
export async function runBackup(opts: BackupOptions): Promise<BackupResult> {
  const clock = opts.clock ?? systemClock;
  const log = (opts.logger ?? nullLogger).with({ key: opts.key });
  const format = opts.format ?? "plain";
  const algorithm = opts.compression ?? "gzip";
  const level = opts.compressionLevel ?? defaultLevel(algorithm);
  const workers = opts.gzipWorkers ?? DEFAULT_GZIP_WORKERS;
  checkOptions(opts.key, { format, algorithm, level, workers });
  if (opts.signal?.aborted) throw aborted(opts.signal);
  const startedAt = clock.now();
  const tools = await resolveTools({
    connection: opts.connection,
    require: [],
    ...pick(opts, "tools", "toolDirs", "serverVersion", "toolsHint", "signal"),
  }).catch((e) => {
    throw failures.from(e, opts.signal);
  });
  checkCustomCodec(format, algorithm, tools.toolset);
  log.info("Backup started", { pgDump: tools.toolset.pgDump, server: tools.server.version });
  const dump = await dumpToStore(opts, {
    format,
    algorithm,
    level,
    workers,
    toolset: tools.toolset,
    clock,
    log,
  });
  const counts = await opts.snapshot?.counts().catch(() => undefined);
  const completedAt = clock.now();
  const manifest: BackupManifest = {
    manifestVersion: 1,
    key: opts.key,
    format,
    compression: format === "plain" ? algorithm : "pg_dump",
    compressionAlgorithm: algorithm,
    compressionLevel: level,
    uncompressedSize: dump.uncompressedSize,
    compressedSize: dump.compressedSize,
    sha256: dump.sha256,
    pgDumpVersion: tools.toolset.version,
    serverVersion: tools.server.version,
    database: opts.connection.database,
    startedAt: new Date(startedAt).toISOString(),
    completedAt: new Date(completedAt).toISOString(),
    durationMs: completedAt - startedAt,
    ...(opts.source ? { source: opts.source } : {}),
    ...(counts ? { counts } : {}),
  };
  const written = await writeManifest(opts, manifest, log);
  log.info("Backup completed", { size: manifest.compressedSize, durationMs: manifest.durationMs });
  return { key: opts.key, manifestKey: manifestKey(opts.key), manifest: written };
}

interface DumpParams {
  format: DumpFormat;
  algorithm: CompressionAlgorithm;
  level: number;
  workers: number;
  toolset: PgToolset;
  clock: Clock;
  log: Logger;
}

interface DumpOutcome {
  uncompressedSize: number;
  compressedSize: number;
  sha256: string;
}

async function dumpToStore(opts: BackupOptions, p: DumpParams): Promise<DumpOutcome> {
  const cmd = buildDumpCommand(p.toolset.pgDump, opts.connection, {
    format: p.format,
    compression: p.algorithm,
    compressionLevel: p.level,
    ...pick(opts, "includeOwnership", "lockWaitTimeoutSeconds"),
    ...(opts.snapshot ? { snapshot: opts.snapshot.id } : {}),
  });
  let child: Deno.ChildProcess;
  try {
    child = toolProcess(cmd).spawn();
  } catch (e) {
    throw new BackupError("ToolNotFound", `Cannot start pg_dump: ${errorMessage(e)}`);
  }
  const tail = new StderrTail({
    secrets: connectionSecrets(opts.connection),
    onLine: (line) => p.log.debug("pg_dump stderr", { line }),
  });
  const stderrDone = tail.drain(child.stderr);
  const uploadCtl = new AbortController();
  let cause: BackupError | undefined;
  const fail = (e: BackupError) => {
    cause ??= e;
    uploadCtl.abort(cause);
    kill(child);
  };
  const stopListening = onAbort(opts.signal, () => fail(aborted(opts.signal!)));

  const raw = new Meter();
  const stored = new Meter();
  const progress = progressReporter(p.clock, opts, () => ({
    uncompressedBytes: raw.bytes,
    compressedBytes: stored.bytes,
  }));
  // Set when the upload stopped reading: pg_dump then dies of a closed pipe, which is a
  // consequence of the storage failure, not a dump failure.
  let uploadGaveUp = false;
  const hooks = {
    onChunk: (c: Uint8Array) => raw.bytes += c.byteLength,
    onCancel: () => uploadGaveUp = true,
    // The end of pg_dump's output is passed on only once it exited 0.
    beforeEnd: async () => {
      const status = await child.status;
      await stderrDone;
      if (!status.success) {
        const e = dumpFailed(status, tail);
        if (!uploadGaveUp) cause ??= e;
        throw cause ?? e;
      }
    },
  };
  const codec = { algorithm: p.algorithm, level: p.level };
  const compressed = p.format !== "plain"
    ? tap(child.stdout, { ...hooks, beforeClose: hooks.beforeEnd })
    : p.workers > 0
    ? parallelCompress(child.stdout, { ...hooks, ...codec, workers: p.workers })
    : compressFromPipe(child.stdout, codec, hooks);
  const body = tap(compressed, {
    onChunk: (c) => {
      stored.update(c);
      progress(false);
    },
  });
  try {
    await opts.store.put(opts.key, body, {
      signal: uploadCtl.signal,
      contentType: p.format === "plain" ? CONTENT_TYPES[p.algorithm] : "application/octet-stream",
      metadata: { ...opts.metadata, "dbtether-format": p.format },
    });
  } catch (e) {
    kill(child);
    await child.status;
    await stderrDone;
    throw cause ?? storageFailed("Cannot upload the backup", e);
  } finally {
    stopListening();
  }
  // Unreachable in practice (the body only ends after a clean exit), but never trust a dump
  // whose process did not exit 0: remove it.
  const status = await child.status;
  await stderrDone;
  if (!status.success || cause) {
    await deleteQuietly(opts.store, opts.key, p.log);
    throw cause ?? dumpFailed(status, tail);
  }
  progress(true);
  return { uncompressedSize: raw.bytes, compressedSize: stored.bytes, sha256: stored.sha256() };
}

async function writeManifest(
  opts: BackupOptions,
  unsigned: BackupManifest,
  log: Logger,
): Promise<BackupManifest> {
  try {
    if (opts.signal?.aborted) throw aborted(opts.signal);
    const m = opts.signManifest ? await sign(opts.signManifest, unsigned) : unsigned;
    const bytes = encodeManifest(m);
    await opts.store.put(manifestKey(opts.key), new Blob([bytes]).stream(), {
      contentType: "application/json",
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return m;
  } catch (e) {
    // Only the dump is ours to remove: a put that failed leaves no manifest, and one that was
    // refused found another writer's manifest there, which must stay.
    await deleteQuietly(opts.store, opts.key, log);
    if (e instanceof BackupError) throw e;
    if (opts.signal?.aborted) throw aborted(opts.signal);
    throw storageFailed("Cannot write the backup manifest", e);
  }
}

async function sign(
  hook: (m: BackupManifest) => Promise<BackupManifest>,
  m: BackupManifest,
): Promise<BackupManifest> {
  try {
    return await hook(m);
  } catch (e) {
    throw new BackupError("SigningFailed", `Cannot sign the backup manifest: ${errorMessage(e)}`);
  }
}

interface CheckedOptions {
  format: DumpFormat;
  algorithm: CompressionAlgorithm;
  level: number;
  workers: number;
}

function checkOptions(key: string, o: CheckedOptions): void {
  const { format, algorithm, level, workers } = o;
  try {
    assertSafeKey(key);
  } catch (e) {
    if (e instanceof TemplateError) throw new BackupError("InvalidOptions", e.message);
    throw e;
  }
  if (format !== "plain" && format !== "custom") {
    throw new BackupError(
      "InvalidOptions",
      `Invalid backup format "${format}": use plain or custom`,
    );
  }
  const bad = levelProblem(algorithm, level);
  if (bad) throw new BackupError("InvalidOptions", `Invalid compression: ${bad}`);
  if (!Number.isInteger(workers) || workers < 0 || workers > MAX_GZIP_WORKERS) {
    throw new BackupError(
      "InvalidOptions",
      `Invalid number of gzip workers ${workers}: use 0 to ${MAX_GZIP_WORKERS}`,
    );
  }
}

/** pg_dump writes zstd into a custom archive from 16 on (`--compress=zstd:N`). */
export const MIN_PG_DUMP_FOR_ZSTD = 16;

function checkCustomCodec(format: DumpFormat, algorithm: CompressionAlgorithm, t: PgToolset) {
  if (format !== "custom" || algorithm !== "zstd" || t.major >= MIN_PG_DUMP_FOR_ZSTD) return;
  throw new BackupError(
    "InvalidOptions",
    `Cannot write a custom-format backup with zstd: pg_dump ${t.version} compresses its ` +
      `archives with gzip only (zstd needs pg_dump ${MIN_PG_DUMP_FOR_ZSTD} or newer); use ` +
      `format plain with zstd, or gzip for custom`,
  );
}

function kill(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGTERM");
  } catch {
    // already exited
  }
}

async function deleteQuietly(store: ObjectStore, key: string, log: Logger): Promise<void> {
  try {
    await store.delete(key);
  } catch (e) {
    log.error("Cannot delete an incomplete backup object", { object: key, error: errorMessage(e) });
  }
}

function dumpFailed(status: Deno.CommandStatus, tail: StderrTail): BackupError {
  const how = status.signal
    ? `pg_dump was killed by ${status.signal}`
    : `pg_dump exited ${status.code}`;
  const stderr = tail.lines();
  return new BackupError("DumpFailed", withStderr(`Backup failed: ${how}`, stderr), { stderr });
}

/** The named optional fields of `o` that are set (for exactOptionalPropertyTypes). */
export function pick<T extends object, K extends keyof T>(o: T, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
