/**
 * The restore engine: `store.get` → SHA-256 check → gunzip or zstd -d → `psql
 * --single-transaction` stdin (or the custom archive → `pg_restore --single-transaction`). The
 * codec of a plain dump is read from its first bytes and must match the manifest's.
 *
 * Nothing is committed before the tool reads the very end of its input: psql issues COMMIT only
 * at end-of-file, and pg_restore cannot finish the archive without its last bytes. So the last
 * chunk of the stored object is held back until the whole object's size and SHA-256 matched the
 * manifest, and stdin is closed only after that. On any failure the tool is killed *before*
 * stdin is closed; the server then rolls the open transaction back. (A plain dump with large
 * objects commits early, and a dead operator closes psql's stdin: callers that must not leave
 * a partial database restore into a scratch database; see controllers/restore.)
 *
 * psql runs every plain dump in restricted mode (backup/restrict.ts): no client meta-command in
 * a dump ever runs, and a psql without `\restrict` is refused (ToolTooOld).
 */
import { type Clock, systemClock } from "../lib/clock.ts";
import { errorMessage } from "../lib/errors.ts";
import { type Logger, nullLogger } from "../lib/log.ts";
import { type ObjectStore, StorageError } from "../storage/store.ts";
import {
  buildPgRestoreCommand,
  buildPsqlRestoreCommand,
  connectionSecrets,
  type DumpFormat,
  type PgConnection,
  type ToolCommand,
  toolProcess,
} from "./dump_command.ts";
import { jobFailures, RestoreError, withStderr } from "./errors.ts";
import { type BackupManifest, manifestAlgorithm, manifestKey, parseManifest } from "./manifest.ts";
import { detectingDecompress } from "./decompress.ts";
import { parseToolVersion } from "./pg_tools.ts";
import { type PgToolset, resolveTools, type ToolJobOptions } from "./resolve_tools.ts";
import { psqlHasRestrict, RESTRICT_VERSIONS, restrictedScript, restrictKey } from "./restrict.ts";
import { StderrTail } from "./stderr_tail.ts";
import { holdLast, Meter, onAbort, progressReporter, tap } from "./streams.ts";
import { assertSafeKey } from "./templates.ts";
import { pick } from "./pipeline.ts";

/** The failures a restore shares with a backup, as RestoreErrors. */
const failures = jobFailures(RestoreError, { name: "Restore", fallback: "RestoreFailed" });
const { aborted, storageFailed } = failures;

export interface RestoreProgress {
  /** Bytes read from storage so far. */
  storedBytes: number;
  /** Bytes fed to psql / pg_restore so far. */
  restoredBytes: number;
  elapsedMs: number;
}

/** Options of {@link runRestore}. */
export interface RestoreOptions extends ToolJobOptions<Omit<RestoreProgress, "elapsedMs">> {
  store: ObjectStore;
  /** The dump object's key (not the manifest's). */
  key: string;
  /** The target database; it should be empty. */
  connection: PgConnection;
  /** Needed only without a manifest; otherwise taken from it (and checked when given). */
  format?: DumpFormat;
  /**
   * Default true: refuse a dump without its manifest (an incomplete backup). When false and the
   * manifest is missing, the dump is restored without checksum verification.
   */
  requireManifest?: boolean;
  /**
   * The manifest, already read (and checked) by the caller with {@link readRestoreManifest}:
   * the dump is verified against exactly what was checked, not a second read.
   */
  manifest?: BackupManifest;
  /** pg_restore only: keep ownership and privileges from the archive. */
  includeOwnership?: boolean;
}

export interface RestoreResult {
  key: string;
  format: DumpFormat;
  /** Undefined when restored without a manifest. */
  manifest?: BackupManifest;
  storedBytes: number;
  restoredBytes: number;
  sha256: string;
  durationMs: number;
}

/** Restores one backup into the target database; throws RestoreError on any failure. */
export async function runRestore(opts: RestoreOptions): Promise<RestoreResult> {
  const clock = opts.clock ?? systemClock;
  const log = (opts.logger ?? nullLogger).with({ key: opts.key });
  const started = clock.now();
  try {
    assertSafeKey(opts.key);
  } catch (e) {
    throw new RestoreError("InvalidOptions", errorMessage(e));
  }
  if (opts.signal?.aborted) throw aborted(opts.signal);
  const manifest = opts.manifest ?? await readRestoreManifest(opts.store, opts.key, opts);
  const format = manifest?.format ?? opts.format;
  if (!format) {
    throw new RestoreError("InvalidOptions", `Cannot restore "${opts.key}": format is unknown`);
  }
  if (manifest && opts.format && opts.format !== manifest.format) {
    throw new RestoreError(
      "InvalidOptions",
      `Cannot restore "${opts.key}" as ${opts.format}: the manifest says ${manifest.format}`,
    );
  }
  const tools = await resolveTools({
    connection: opts.connection,
    require: [format === "plain" ? "psql" : "pgRestore"],
    ...pick(opts, "tools", "toolDirs", "serverVersion", "toolsHint", "signal"),
  }).catch((e) => {
    throw failures.from(e, opts.signal);
  });
  checkArchiveVersion(format, manifest, tools.toolset);
  if (format === "plain" && !(await psqlHasRestrict(tools.toolset.psql))) {
    throw new RestoreError(
      "ToolTooOld",
      `Cannot restore "${opts.key}" with psql ${tools.toolset.version} (${tools.toolset.psql}): ` +
        `it has no \\restrict, which keeps meta-commands in a dump from running on this host; ` +
        `install psql ${RESTRICT_VERSIONS} or newer`,
    );
  }
  const cmd = format === "plain"
    ? buildPsqlRestoreCommand(tools.toolset.psql, opts.connection)
    : buildPgRestoreCommand(
      tools.toolset.pgRestore,
      opts.connection,
      pick(opts, "includeOwnership"),
    );
  log.info("Restore started", { tool: cmd.command, format });
  const out = await feed(opts, { cmd, format, manifest, clock, log });
  const durationMs = clock.now() - started;
  log.info("Restore completed", { bytes: out.storedBytes, durationMs });
  return {
    key: opts.key,
    format,
    ...(manifest ? { manifest } : {}),
    ...out,
    durationMs,
  };
}

/** Largest manifest read: they are a few hundred bytes; anything huge is not one. */
const MAX_MANIFEST_BYTES = 1 << 20;

/**
 * Reads and parses the manifest of `key`. Throws RestoreError BackupNotFound (missing unless
 * `requireManifest` is false, or not a manifest), StorageFailed or Aborted.
 */
export async function readRestoreManifest(
  store: ObjectStore,
  key: string,
  opts: { signal?: AbortSignal; requireManifest?: boolean } = {},
): Promise<BackupManifest | undefined> {
  try {
    assertSafeKey(key);
  } catch (e) {
    throw new RestoreError("InvalidOptions", errorMessage(e));
  }
  let text: string;
  try {
    const s = await store.get(manifestKey(key), pick(opts, "signal"));
    const bytes = new Uint8Array(await new Response(s).arrayBuffer());
    if (bytes.length > MAX_MANIFEST_BYTES) {
      throw new RestoreError(
        "BackupNotFound",
        `Cannot restore "${key}": "${manifestKey(key)}" is ${bytes.length} bytes, not a manifest`,
      );
    }
    text = new TextDecoder().decode(bytes);
  } catch (e) {
    if (e instanceof RestoreError) throw e;
    if (opts.signal?.aborted) throw aborted(opts.signal);
    if (e instanceof StorageError && e.reason === "NotFound") {
      if (opts.requireManifest === false) return undefined;
      throw new RestoreError(
        "BackupNotFound",
        `Cannot restore "${key}": no manifest at "${manifestKey(key)}" ` +
          `(the backup does not exist or did not complete)`,
      );
    }
    throw storageFailed(`Cannot read the manifest of "${key}"`, e);
  }
  try {
    return parseManifest(text);
  } catch (e) {
    throw new RestoreError("BackupNotFound", `Cannot restore "${key}": ${errorMessage(e)}`);
  }
}

function checkArchiveVersion(f: DumpFormat, m: BackupManifest | undefined, t: PgToolset): void {
  // pg_restore cannot read archives written by a newer pg_dump.
  const made = m ? parseToolVersion(`(PostgreSQL) ${m.pgDumpVersion}`) : undefined;
  if (f === "custom" && made && made.major > t.major) {
    throw new RestoreError(
      "ToolNotFound",
      `Cannot restore "${m?.key}": it was written by pg_dump ${m?.pgDumpVersion}, ` +
        `newer than pg_restore ${t.version}`,
    );
  }
}

interface FeedParams {
  cmd: ToolCommand;
  format: DumpFormat;
  manifest: BackupManifest | undefined;
  clock: Clock;
  log: Logger;
}

async function feed(opts: RestoreOptions, p: FeedParams) {
  const ctl = new AbortController();
  let cause: RestoreError | undefined;
  const setCause = (e: RestoreError) => {
    cause ??= opts.signal?.aborted ? aborted(opts.signal) : e;
    return cause;
  };
  let source: ReadableStream<Uint8Array>;
  try {
    source = await opts.store.get(opts.key, { signal: ctl.signal });
  } catch (e) {
    if (opts.signal?.aborted) throw aborted(opts.signal);
    if (e instanceof StorageError && e.reason === "NotFound") {
      throw new RestoreError("BackupNotFound", `Cannot restore "${opts.key}": no object there`);
    }
    throw storageFailed(`Cannot read "${opts.key}"`, e);
  }
  let child: Deno.ChildProcess;
  try {
    // psql prints the results of the dump's SELECTs (set_config, setval): nobody reads them.
    child = toolProcess(p.cmd, { stdin: "piped", stdout: "null" }).spawn();
  } catch (e) {
    await source.cancel().catch(() => {});
    throw new RestoreError("ToolNotFound", `Cannot start ${p.cmd.command}: ${errorMessage(e)}`);
  }
  const tail = new StderrTail({
    secrets: connectionSecrets(opts.connection),
    onLine: (line) => p.log.debug("restore stderr", { line }),
  });
  const stderrDone = tail.drain(child.stderr);
  const stopListening = onAbort(opts.signal, () => {
    setCause(aborted(opts.signal!));
    killHard(child);
    ctl.abort(cause);
  });

  const stored = new Meter();
  const restored = new Meter();
  const progress = progressReporter(p.clock, opts, () => ({
    storedBytes: stored.bytes,
    restoredBytes: restored.bytes,
  }));
  const read = tap(source, {
    onChunk: (c) => {
      stored.update(c);
      progress(false);
    },
    onError: (e) => setCause(storageFailed(`Cannot read "${opts.key}"`, e)),
  });
  const verified = holdLast(read, () => {
    const m = p.manifest;
    if (!m) return;
    const sha = stored.sha256();
    if (stored.bytes !== m.compressedSize || sha !== m.sha256) {
      throw setCause(
        new RestoreError(
          "ChecksumMismatch",
          `Cannot restore "${opts.key}": the stored object does not match its manifest ` +
            `(size ${stored.bytes}, expected ${m.compressedSize}; sha256 ${sha}, expected ${m.sha256})`,
        ),
      );
    }
  });
  // Plain: psql in restricted mode, with a key the dump cannot know.
  const expected = p.manifest ? manifestAlgorithm(p.manifest) : undefined;
  const decoded = p.format === "plain"
    ? restrictedScript(detectingDecompress(verified, { expected }), restrictKey())
    : verified;
  const input = tap(decoded, {
    onChunk: (c) => restored.bytes += c.byteLength,
    onError: (e) =>
      setCause(
        new RestoreError("ChecksumMismatch", `Cannot decompress "${opts.key}": ${errorMessage(e)}`),
      ),
  });
  try {
    await input.pipeTo(child.stdin, { preventClose: true, preventAbort: true, signal: ctl.signal });
  } catch (e) {
    // Kill before stdin closes: end-of-file would let psql COMMIT what it has.
    killHard(child);
    await closeQuietly(child.stdin);
    const status = await child.status;
    await stderrDone;
    stopListening();
    if (cause) throw withTail(cause, tail);
    throw restoreFailed(status, tail, errorMessage(e));
  }
  stopListening();
  await closeQuietly(child.stdin);
  const status = await child.status;
  await stderrDone;
  if (opts.signal?.aborted && !status.success) throw aborted(opts.signal);
  if (!status.success) throw restoreFailed(status, tail);
  progress(true);
  return { storedBytes: stored.bytes, restoredBytes: restored.bytes, sha256: stored.sha256() };
}

function killHard(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // already exited
  }
}

async function closeQuietly(w: WritableStream<Uint8Array>): Promise<void> {
  try {
    await w.close();
  } catch {
    // the child is gone or the stream already errored
  }
}

function restoreFailed(status: Deno.CommandStatus, tail: StderrTail, detail?: string) {
  const how = status.signal ? `killed by ${status.signal}` : `exited ${status.code}`;
  const lines = tail.lines();
  const base = `Restore failed: the restore tool ${how}`;
  const msg = lines.length ? withStderr(base, lines) : detail ? `${base}: ${detail}` : base;
  return new RestoreError("RestoreFailed", msg, { stderr: lines });
}

function withTail(e: RestoreError, tail: StderrTail): RestoreError {
  return e.stderr.length || !tail.lines().length
    ? e
    : new RestoreError(e.reason, e.message, { stderr: tail.lines(), cause: e.cause });
}
