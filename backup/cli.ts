/**
 * `dbtether backup` and `dbtether restore`: the same engines as the controllers, run from a
 * terminal outside any cluster. main.ts dispatches here; exit codes: 0 done, 1 the operation
 * failed, 2 bad command line; 130 interrupted.
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { errorMessage } from "../lib/errors.ts";
import { createStore } from "../storage/factory.ts";
import { type ObjectStore, StorageError, type StorageLocation } from "../storage/store.ts";
import { parseStorageUrl } from "../storage/url.ts";
import {
  CONNECTION_HELP,
  CONNECTION_OPTIONS,
  connectionFrom,
  formatBytes,
  formatDuration,
  progressSink,
  UsageError,
} from "./cli_support.ts";
import type { DumpFormat } from "./dump_command.ts";
import {
  type CompressionAlgorithm,
  defaultLevel,
  isCompressionAlgorithm,
  levelProblem,
  PLAIN_EXTENSIONS,
} from "./compression.ts";
import { JobError, RestoreError } from "./errors.ts";
import { isManifestKey, MANIFEST_SUFFIX } from "./manifest.ts";
import { defaultToolDirs } from "./pg_tools.ts";
import { runBackup } from "./pipeline.ts";
import { runRestore } from "./restore.ts";
import { renderBackupKey, TemplateError, validateTemplate } from "./templates.ts";

/** What the commands need from the process; main.ts passes Deno's. */
export interface CliDeps {
  env: Record<string, string | undefined>;
  stdout: { writeSync(p: Uint8Array): number; isTerminal(): boolean };
  stderr: { writeSync(p: Uint8Array): number };
  /** Cancels the operation; by default SIGINT/SIGTERM do. */
  signal?: AbortSignal;
  makeStore?: (location: StorageLocation) => ObjectStore;
  readFile?: (path: string) => string;
  now?: () => Date;
}

export const BACKUP_HELP = `Usage: dbtether backup [flags] --to URL

Backs up one database with pg_dump, streamed through gzip or zstd straight into object storage. The
object appears only when the dump completed; a <key>${MANIFEST_SUFFIX} written last records
its size, SHA-256 and versions. That manifest is not signed: a Restore in a cluster uses it only
where the BackupStorage sets spec.restores.allowUnsigned. Progress goes to stdout: a bar on a terminal, JSON lines
otherwise.

Storage:
      --to URL                  s3://bucket/prefix, gs://bucket/prefix,
                                azblob://account/container/prefix or file:///directory
                                (S3-compatible: s3://b/p?endpoint=http://host:9000&forcePathStyle=true)
      --key NAME                object name under the URL's prefix (overrides the templates)
      --path-template T         default "{{ .DatabaseName }}"
      --filename-template T     default "{{ .Timestamp }}.sql.gz" (".sql.zst" for zstd,
                                ".dump" for custom)
  Templates know ClusterName (the host), DatabaseName, Namespace (empty), Timestamp (UTC
  YYYYMMDD-HHMMSS), Year, Month, Day, RunID. Credentials: each cloud's default chain
  (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*).

Dump:
  -F, --format plain|custom     plain SQL compressed by dbtether (default), or pg_dump's
                                custom archive (pg_dump compresses it; restored with pg_restore)
  -C, --compression gzip|zstd   default gzip (zstd in a custom archive needs pg_dump 16+)
  -Z, --compression-level N     gzip 0-9, default 6; zstd 1-19, default 3
      --include-ownership       keep OWNER TO and GRANT statements (off: restores into other
                                clusters and as a non-superuser work)
      --json                    JSON lines on stdout even on a terminal

${CONNECTION_HELP}
Examples:
  PGPASSWORD=... dbtether backup -h db.example.com -U admin -d orders --to s3://backups/prod/
  dbtether backup -d orders --to file:///var/backups --key orders/before-migration.sql.gz
  dbtether backup -d orders -F custom -Z 4 --to gs://acme-backups/pg/
`;

export const RESTORE_HELP = `Usage: dbtether restore [flags] --from URL

Restores one backup into an (empty) database: storage → SHA-256 check → gunzip or zstd -d →
psql --single-transaction (pg_restore for custom archives). Nothing is committed unless the
whole object matched its manifest and every statement succeeded (a plain dump with large
objects commits those early: restore into a new database). psql runs in \\restrict mode, so no
meta-command in the dump (\\!, \\copy ... program) runs; it needs psql 13.22, 14.19, 15.14,
16.10, 17.6, 18 or newer. Manifest signatures are not checked here (the operator's key stays
in its cluster).

Source:
      --from URL            the backup object, e.g. s3://backups/prod/orders/20260101-020000.sql.gz,
                            or a prefix with --latest
      --latest              restore the newest complete backup under the --from prefix
      --no-manifest         restore an object without a manifest (no checksum verification;
                            for dumps made by other tools); needs --format unless it is plain
  -F, --format plain|custom only needed with --no-manifest (default plain)
      --include-ownership   pg_restore only: keep owners and privileges from the archive
      --json                JSON lines on stdout even on a terminal

${CONNECTION_HELP}
Examples:
  dbtether restore -d orders_copy --from s3://backups/prod/orders/20260101-020000.sql.gz
  dbtether restore -d orders_copy --from file:///var/backups/orders/ --latest
  dbtether restore -d scratch --from gs://acme/pg/dump.sql.gz --no-manifest
`;

const enc = new TextEncoder();

/** `dbtether backup`; returns the exit code. */
export function backupCommand(argv: string[], deps: CliDeps): Promise<number> {
  return command(argv, deps, { help: BACKUP_HELP, verb: "backup", run: backup });
}

/** `dbtether restore`; returns the exit code. */
export function restoreCommand(argv: string[], deps: CliDeps): Promise<number> {
  return command(argv, deps, { help: RESTORE_HELP, verb: "restore", run: restore });
}

interface Ctx {
  deps: CliDeps;
  signal: AbortSignal;
  out: (s: string) => void;
}

async function command(
  argv: string[],
  deps: CliDeps,
  c: { help: string; verb: string; run: (argv: string[], ctx: Ctx) => Promise<void> },
): Promise<number> {
  const err = (s: string) => deps.stderr.writeSync(enc.encode(s));
  if (argv.includes("--help") || argv.includes("-?")) {
    deps.stdout.writeSync(enc.encode(c.help));
    return 0;
  }
  const own = deps.signal ? undefined : signalFromProcess();
  try {
    await c.run(argv, {
      deps,
      signal: deps.signal ?? own!.signal,
      out: (s) => deps.stdout.writeSync(enc.encode(s)),
    });
    return 0;
  } catch (e) {
    if (isUsage(e)) {
      // parseArgs appends advice about positionals to unknown options: keep the first sentence.
      const msg = errorMessage(e).replace(/^(Unknown option '[^']*')\..*$/s, "$1");
      err(`dbtether ${c.verb}: ${msg} (see dbtether ${c.verb} --help)\n`);
      return 2;
    }
    const reason = e instanceof JobError ? ` [${e.reason}]` : "";
    err(`\ndbtether ${c.verb}: ${errorMessage(e).replaceAll("\n", " | ")}${reason}\n`);
    return e instanceof JobError && e.reason === "Aborted" ? 130 : 1;
  } finally {
    own?.dispose();
  }
}

function isUsage(e: unknown): boolean {
  if (e instanceof UsageError || e instanceof TemplateError) return true;
  if (e instanceof StorageError && e.reason === "InvalidConfiguration") return true;
  if (e instanceof JobError && e.reason === "InvalidOptions") {
    return true;
  }
  // node:util parseArgs: unknown option, missing value.
  return typeof (e as { code?: unknown })?.code === "string" &&
    String((e as { code: string }).code).startsWith("ERR_PARSE_ARGS");
}

function signalFromProcess(): { signal: AbortSignal; dispose(): void } {
  const ctl = new AbortController();
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => ctl.abort(new Error(`interrupted by ${sig}`));
    Deno.addSignalListener(sig, h);
    return () => Deno.removeSignalListener(sig, h);
  });
  return { signal: ctl.signal, dispose: () => handlers.forEach((off) => off()) };
}

function parse<T extends ParseArgsOptionsConfig>(argv: string[], options: T) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...CONNECTION_OPTIONS, ...options, json: { type: "boolean" } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length) throw new UsageError(`Unexpected argument "${positionals[0]}"`);
  return values;
}

function format(v: string | undefined): DumpFormat | undefined {
  if (v === undefined || v === "plain" || v === "custom") return v;
  throw new UsageError(`Invalid format "${v}": expected plain or custom`);
}

function algorithm(v: string | undefined): CompressionAlgorithm {
  if (v === undefined) return "gzip";
  if (isCompressionAlgorithm(v)) return v;
  throw new UsageError(`Invalid compression "${v}": expected gzip or zstd`);
}

function level(v: string | undefined, a: CompressionAlgorithm): number {
  if (v === undefined) return defaultLevel(a);
  const bad = /^\d{1,2}$/.test(v) ? levelProblem(a, Number(v)) : `invalid ${a} level "${v}"`;
  if (bad) throw new UsageError(`Invalid compression level: ${bad}`);
  return Number(v);
}

function common(ctx: Ctx, values: Record<string, unknown>) {
  const env = ctx.deps.env;
  const conn = connectionFrom(
    values,
    env,
    ctx.deps.readFile ?? ((p) => Deno.readTextFileSync(p)),
  );
  const toolDirs = (values["tool-dir"] as string[] | undefined) ?? defaultToolDirs(env.PATH);
  const terminal = !values.json && ctx.deps.stdout.isTerminal();
  const makeStore = ctx.deps.makeStore ?? ((l: StorageLocation) => createStore(l));
  return { conn, toolDirs, toolsHint: "--tool-dir (or PATH)", terminal, makeStore };
}

async function backup(argv: string[], ctx: Ctx): Promise<void> {
  const v = parse(argv, {
    to: { type: "string" },
    key: { type: "string" },
    "path-template": { type: "string" },
    "filename-template": { type: "string" },
    format: { type: "string", short: "F" },
    compression: { type: "string", short: "C" },
    "compression-level": { type: "string", short: "Z" },
    "include-ownership": { type: "boolean" },
  });
  if (!v.to) throw new UsageError("Missing --to URL: where to store the backup");
  const fmt = format(v.format) ?? "plain";
  const codec = algorithm(v.compression);
  const lvl = level(v["compression-level"], codec);
  const { location, prefix } = parseStorageUrl(v.to);
  const c = common(ctx, v);
  const at = (ctx.deps.now ?? (() => new Date()))();
  for (const t of [v["path-template"], v["filename-template"]]) if (t) validateTemplate(t);
  const name = v.key ?? renderBackupKey({
    pathTemplate: v["path-template"] ?? "{{ .DatabaseName }}",
    filenameTemplate: v["filename-template"] ??
      `{{ .Timestamp }}${fmt === "custom" ? ".dump" : PLAIN_EXTENSIONS[codec]}`,
    clusterName: c.conn.host.replace(/^\/+/, "").replaceAll("/", "_"),
    databaseName: c.conn.database,
    namespace: "",
    runId: crypto.randomUUID().slice(0, 8),
    at,
  });
  const sink = progressSink(ctx.out, {
    terminal: c.terminal,
    verb: "backup",
    labels: ["dumped", "stored"],
  });
  const store = c.makeStore(location);
  try {
    const r = await runBackup({
      connection: c.conn,
      store,
      key: prefix + name,
      format: fmt,
      compression: codec,
      compressionLevel: lvl,
      signal: ctx.signal,
      toolDirs: c.toolDirs,
      toolsHint: c.toolsHint,
      progressIntervalMs: c.terminal ? 200 : 2000,
      onProgress: (p) =>
        sink.progress({ read: p.uncompressedBytes, written: p.compressedBytes, ...p }),
      ...(v["include-ownership"] ? { includeOwnership: true } : {}),
    });
    const m = r.manifest;
    sink.done(
      { ...m, url: v.to, manifestKey: r.manifestKey },
      `Backed up "${m.database}" to ${r.key}: ${formatBytes(m.uncompressedSize)} dumped, ` +
        `${formatBytes(m.compressedSize)} stored in ${formatDuration(m.durationMs)} ` +
        `(sha256 ${m.sha256.slice(0, 16)}…, pg_dump ${m.pgDumpVersion}, server ${m.serverVersion})`,
    );
  } finally {
    await store.close();
  }
}

async function restore(argv: string[], ctx: Ctx): Promise<void> {
  const v = parse(argv, {
    from: { type: "string" },
    latest: { type: "boolean" },
    "no-manifest": { type: "boolean" },
    format: { type: "string", short: "F" },
    "include-ownership": { type: "boolean" },
  });
  if (!v.from) throw new UsageError("Missing --from URL: which backup to restore");
  if (v.latest && v["no-manifest"]) {
    throw new UsageError("--latest finds complete backups by their manifests: drop --no-manifest");
  }
  const fmt = format(v.format);
  if (fmt && !v["no-manifest"]) {
    throw new UsageError("--format is only used with --no-manifest (the manifest knows it)");
  }
  const c = common(ctx, v);
  const { location, key: direct, listPrefix } = objectUrl(v.from, !!v.latest);
  const store = c.makeStore(location);
  try {
    const key = v.latest ? await latestBackup(store, listPrefix, v.from) : direct;
    const sink = progressSink(ctx.out, {
      terminal: c.terminal,
      verb: "restore",
      labels: ["read", "restored"],
    });
    const r = await runRestore({
      store,
      key,
      connection: c.conn,
      signal: ctx.signal,
      toolDirs: c.toolDirs,
      toolsHint: c.toolsHint,
      progressIntervalMs: c.terminal ? 200 : 2000,
      onProgress: (p) => sink.progress({ read: p.storedBytes, written: p.restoredBytes, ...p }),
      ...(v["no-manifest"] ? { requireManifest: false, format: fmt ?? "plain" } : {}),
      ...(v["include-ownership"] ? { includeOwnership: true } : {}),
    });
    sink.done(
      {
        key: r.key,
        format: r.format,
        storedBytes: r.storedBytes,
        sha256: r.sha256,
        durationMs: r.durationMs,
        database: c.conn.database,
        verified: !!r.manifest,
      },
      `Restored ${r.key} into "${c.conn.database}": ${formatBytes(r.storedBytes)} read, ` +
        `${formatBytes(r.restoredBytes)} applied in ${formatDuration(r.durationMs)}` +
        (r.manifest ? " (sha256 verified)" : " (no manifest: not verified)"),
    );
  } finally {
    await store.close();
  }
}

/**
 * Splits an object URL into a store location and a key. For file:// the directory holding the
 * object becomes the store's root.
 */
export function objectUrl(
  url: string,
  isPrefix: boolean,
): { location: StorageLocation; key: string; listPrefix: string } {
  const { location, prefix } = parseStorageUrl(url);
  if (location.local) {
    const path = location.local.path;
    if (isPrefix) return { location, key: "", listPrefix: "" };
    const i = path.lastIndexOf("/");
    return {
      location: { local: { path: path.slice(0, i) || "/" } },
      key: path.slice(i + 1),
      listPrefix: "",
    };
  }
  const key = prefix.replace(/\/$/, "");
  if (!isPrefix && key === "") {
    throw new UsageError(`"${url}" names no object: add its path, or use --latest`);
  }
  return { location, key, listPrefix: prefix };
}

/** The newest backup under `prefix` that has a manifest (i.e. completed). */
async function latestBackup(store: ObjectStore, prefix: string, url: string): Promise<string> {
  const manifests = (await store.list(prefix)).filter((o) => isManifestKey(o.key));
  manifests.sort((a, b) =>
    a.lastModified.getTime() - b.lastModified.getTime() || a.key.localeCompare(b.key)
  );
  const last = manifests.at(-1);
  if (!last) {
    throw new RestoreError("BackupNotFound", `Cannot find a complete backup under ${url}`);
  }
  return last.key.slice(0, -MANIFEST_SUFFIX.length);
}
