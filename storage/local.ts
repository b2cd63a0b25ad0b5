/**
 * A directory on disk as an object store: for a VM, a mounted volume and the demo.
 *
 * An object is written to a temporary name in its final directory, fsynced, and hard-linked
 * into place: link(2) fails when the name exists, so a put never replaces an object (rename
 * would), a reader never sees a partial object, and a crash leaves at most a temporary file
 * (whose name `list` skips). Metadata lives in a sidecar JSON file beside the object, named by
 * the object's inode and written before the link: the object and its metadata appear
 * together, and a put that loses the race for a name cannot touch the winner's sidecar. Names
 * starting with `.dbtether-` are reserved for those files and cannot be used as key segments.
 *
 * File-system calls take no signal; each call checks its signal before it starts (and `list`
 * before each directory), and a local call is over in moments anyway.
 */
import { basename, dirname, join } from "node:path";
import { alreadyExists, requestAborted } from "./errors.ts";
import {
  abortable,
  byKey,
  type CallOptions,
  type ObjectHead,
  type ObjectInfo,
  type ObjectStore,
  putFailure,
  type PutOptions,
  StorageError,
  throwIfAborted,
  trackSource,
  validateKey,
} from "./store.ts";

const RESERVED = ".dbtether-";
const TEMP = ".dbtether-tmp-";
const META = ".dbtether-meta-";

/** Options of {@link LocalStore}. */
export interface LocalStoreOptions {
  /** The root directory; it must exist (like a bucket, the store never creates it). */
  path: string;
}

/** An {@link ObjectStore} backed by a directory tree. */
export class LocalStore implements ObjectStore {
  readonly provider = "local" as const;
  readonly #root: string;

  constructor(opts: LocalStoreOptions) {
    if (!opts.path.startsWith("/")) {
      throw new StorageError("InvalidConfiguration", "Local storage path must be absolute");
    }
    this.#root = opts.path.replace(/\/+$/, "") || "/";
  }

  async put(
    key: string,
    body: ReadableStream<Uint8Array>,
    opts: PutOptions = {},
  ): Promise<{ size: number }> {
    const path = this.#path(key);
    const source = trackSource(body, opts.signal);
    const temp = await tempPath(path);
    const made: { temp: boolean; meta: string | undefined } = { temp: false, meta: undefined };
    try {
      throwIfAborted(opts.signal);
      await this.#checkRoot();
      await Deno.mkdir(dirname(path), { recursive: true });
      // Fails before a whole dump is written; the link below is what guarantees it.
      if (await statOrUndefined(path)) throw alreadyExists();
      const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
      made.temp = true;
      // pipeTo closes the file on success and aborts (closes) it on failure.
      await source.stream.pipeTo(file.writable);
      throwIfAborted(opts.signal);
      await syncPath(temp);
      const ino = (await Deno.stat(temp)).ino;
      made.meta = await metaPath(path, ino);
      await writeMeta(path, made.meta, opts.metadata ?? {});
      await linkNew(temp, path);
      made.meta = undefined;
      await syncPath(dirname(path));
      await Deno.remove(temp).catch(() => {});
      made.temp = false;
      if (opts.signal?.aborted) {
        // Aborted while the object was linked into place: it must not stay at the key.
        await this.#removeObject(path, ino);
        throwIfAborted(opts.signal);
      }
      return { size: source.bytes };
    } catch (e) {
      await source.cancel(e);
      if (made.temp) await Deno.remove(temp).catch(() => {});
      if (made.meta) await Deno.remove(made.meta).catch(() => {});
      throw putFailure(e, source, { signal: opts.signal, map: mapError });
    }
  }

  async get(key: string, opts: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const path = this.#path(key);
    await this.#ready(opts.signal);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
      if (!(await file.stat()).isFile) {
        file.close();
        throw new Deno.errors.NotFound();
      }
    } catch (e) {
      throw mapError(e);
    }
    return abortable(file.readable, opts.signal);
  }

  async head(key: string, opts: CallOptions = {}): Promise<ObjectHead | undefined> {
    const path = this.#path(key);
    await this.#ready(opts.signal);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw mapError(e);
    }
    if (!info.isFile) return undefined;
    return {
      key,
      size: info.size,
      lastModified: info.mtime ?? new Date(0),
      metadata: await readMeta(path, info.ino),
    };
  }

  async list(prefix: string, opts: CallOptions = {}): Promise<ObjectInfo[]> {
    validateKey(prefix, "prefix");
    await this.#ready(opts.signal);
    // Only the directory the prefix names up to its last '/' can hold matching keys.
    const cut = prefix.lastIndexOf("/");
    const start = cut < 0 ? "" : prefix.slice(0, cut);
    const out: ObjectInfo[] = [];
    await this.#walk(start, { prefix, out, signal: opts.signal });
    return out.sort(byKey);
  }

  async delete(key: string, opts: CallOptions = {}): Promise<void> {
    const path = this.#path(key);
    await this.#ready(opts.signal);
    const info = await statOrUndefined(path).catch((e) => {
      throw mapError(e);
    });
    if (info && !info.isFile) return;
    await this.#removeObject(path, info?.ino ?? null);
  }

  /** Removes the object at `path` and its sidecars; missing files are fine. */
  async #removeObject(path: string, ino: number | null): Promise<void> {
    const files = [path, await metaPath(path, ino), legacyMetaPath(path)];
    for (const p of files) {
      try {
        await Deno.remove(p);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) continue;
        throw mapError(e);
      }
    }
  }

  async probe(opts: CallOptions = {}): Promise<void> {
    await this.#ready(opts.signal);
    const temp = join(this.#root, `${TEMP}probe-${crypto.randomUUID()}`);
    try {
      await Deno.writeFile(temp, new Uint8Array(), { createNew: true, mode: 0o600 });
      await Deno.remove(temp);
    } catch (e) {
      throw mapError(e);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Removes the temporary files of puts to `key` that a crash interrupted, and sidecars that
   * belong to no object at `key` (a crash between writing one and linking its object).
   */
  async abortIncompleteUploads(key: string, opts: CallOptions = {}): Promise<number> {
    const path = this.#path(key);
    await this.#ready(opts.signal);
    const tag = await nameTag(path);
    const current = await statOrUndefined(path).catch(() => undefined);
    const keep = current ? basename(await metaPath(path, current.ino)) : undefined;
    let removed = 0;
    try {
      for await (const e of Deno.readDir(dirname(path))) {
        const temp = e.name.startsWith(`${TEMP}${tag}-`);
        const orphan = e.name.startsWith(`${META}${tag}-`) && e.name !== keep;
        if (!e.isFile || !(temp || orphan)) continue;
        await Deno.remove(join(dirname(path), e.name)).catch(() => {});
        removed++;
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return 0;
      throw mapError(e);
    }
    return removed;
  }

  #path(key: string): string {
    validateKey(key);
    if (key.split("/").some((s) => s.startsWith(RESERVED))) {
      throw new StorageError(
        "InvalidConfiguration",
        `Invalid object key: '${RESERVED}' is reserved`,
      );
    }
    return join(this.#root, key);
  }

  /** Throws Aborted when the signal fired, then checks the root like a bucket. */
  async #ready(signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw requestAborted(signal);
    await this.#checkRoot();
  }

  async #checkRoot(): Promise<void> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(this.#root);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new StorageError("BucketNotFound", "Local storage directory does not exist");
      }
      throw mapError(e);
    }
    if (!info.isDirectory) {
      throw new StorageError("BucketNotFound", "Local storage path is not a directory");
    }
  }

  async #walk(rel: string, w: Walk): Promise<void> {
    if (w.signal?.aborted) throw requestAborted(w.signal);
    const { prefix, out } = w;
    const dir = rel === "" ? this.#root : join(this.#root, rel);
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
      throw mapError(e);
    }
    for (const entry of entries) {
      if (entry.name.startsWith(RESERVED)) continue;
      const key = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory) {
        // Descend only where keys below can still match the prefix.
        const k = key + "/";
        if (k.startsWith(prefix) || prefix.startsWith(k)) await this.#walk(key, w);
      } else if (entry.isFile && key.startsWith(prefix)) {
        const info = await Deno.stat(join(this.#root, key)).catch(() => undefined);
        if (info) out.push({ key, size: info.size, lastModified: info.mtime ?? new Date(0) });
      }
    }
  }
}

/** One `list` walk: what it looks for, where it collects, and its signal. */
interface Walk {
  prefix: string;
  out: ObjectInfo[];
  signal: AbortSignal | undefined;
}

/**
 * A temporary name beside `path`: `.dbtether-tmp-<tag>-<uuid>`, where the tag (a hash of the
 * final name, which may be too long to repeat) lets a later cleanup find a crashed put's file.
 */
async function tempPath(path: string): Promise<string> {
  return join(dirname(path), `${TEMP}${await nameTag(path)}-${crypto.randomUUID()}`);
}

async function nameTag(path: string): Promise<string> {
  const name = new TextEncoder().encode(path.slice(path.lastIndexOf("/") + 1));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", name));
  return Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The sidecar of the object with inode `ino` at `path`: `.dbtether-meta-<tag>-<ino>.json`. */
async function metaPath(path: string, ino: number | null): Promise<string> {
  return join(dirname(path), `${META}${await nameTag(path)}-${ino ?? 0}.json`);
}

/** Where versions before no-overwrite kept the sidecar: `.dbtether-meta-<name>.json`. */
function legacyMetaPath(path: string): string {
  return join(dirname(path), `${META}${basename(path)}.json`);
}

/**
 * Writes a sidecar (also for empty metadata, so that a new object never picks up a stale
 * legacy sidecar). Replacing is fine: the name is that of an inode this put holds.
 */
async function writeMeta(
  path: string,
  meta: string,
  metadata: Record<string, string>,
): Promise<void> {
  const temp = await tempPath(path);
  try {
    await Deno.writeTextFile(temp, JSON.stringify(metadata), { createNew: true, mode: 0o600 });
    await syncPath(temp);
    await Deno.rename(temp, meta);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
}

async function readMeta(path: string, ino: number | null): Promise<Record<string, string>> {
  for (const p of [await metaPath(path, ino), legacyMetaPath(path)]) {
    let text: string;
    try {
      text = await Deno.readTextFile(p);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw mapError(e);
    }
    const parsed: unknown = JSON.parse(text);
    if (!parsed || typeof parsed !== "object") return {};
    return Object.fromEntries(
      Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === "string"),
    );
  }
  return {};
}

/** Links `temp` to `path`; AlreadyExists when `path` exists. */
async function linkNew(temp: string, path: string): Promise<void> {
  try {
    await Deno.link(temp, path);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) throw alreadyExists();
    throw e;
  }
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw e;
  }
}

/** fsync a file or a directory (the latter makes a rename durable). */
async function syncPath(path: string): Promise<void> {
  const f = await Deno.open(path, { read: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}

function mapError(e: unknown): StorageError {
  if (e instanceof StorageError) return e;
  if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
    return new StorageError("NotFound", "Object not found");
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return new StorageError("AccessDenied", "Local storage access denied: permission denied", {
      cause: e,
    });
  }
  const why = e instanceof Error ? e.name : "unknown error";
  return new StorageError("StorageError", `Local storage failed: ${why}`, { cause: e });
}
