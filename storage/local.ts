/**
 * A directory on disk as an object store: for a VM, a mounted volume and the demo.
 *
 * An object is written to a temporary name in its final directory, fsynced, and renamed into
 * place, so a reader never sees a partial object and a crash leaves at most a temporary file
 * (whose name `list` skips). Metadata lives in a sidecar JSON file beside the object. Names
 * starting with `.dbtether-` are reserved for those files and cannot be used as key segments.
 */
import { dirname, join } from "node:path";
import {
  abortable,
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
    const dir = dirname(path);
    const temp = await tempPath(path);
    let written = false;
    try {
      throwIfAborted(opts.signal);
      await this.#checkRoot();
      await Deno.mkdir(dir, { recursive: true });
      const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
      written = true;
      // pipeTo closes the file on success and aborts (closes) it on failure.
      await source.stream.pipeTo(file.writable);
      throwIfAborted(opts.signal);
      await syncPath(temp);
      await this.#writeMeta(path, opts.metadata ?? {});
      await Deno.rename(temp, path);
      written = false;
      await syncPath(dir);
      return { size: source.bytes };
    } catch (e) {
      await source.cancel(e);
      if (written) await Deno.remove(temp).catch(() => {});
      throw putFailure(e, source, { signal: opts.signal, map: mapError });
    }
  }

  async get(key: string, opts: { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
    const path = this.#path(key);
    await this.#checkRoot();
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

  async head(
    key: string,
  ): Promise<(ObjectInfo & { metadata: Record<string, string> }) | undefined> {
    const path = this.#path(key);
    await this.#checkRoot();
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
      metadata: await this.#readMeta(path),
    };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validateKey(prefix, "prefix");
    await this.#checkRoot();
    // Only the directory the prefix names up to its last '/' can hold matching keys.
    const cut = prefix.lastIndexOf("/");
    const start = cut < 0 ? "" : prefix.slice(0, cut);
    const out: ObjectInfo[] = [];
    await this.#walk(start, prefix, out);
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out;
  }

  async delete(key: string): Promise<void> {
    const path = this.#path(key);
    await this.#checkRoot();
    for (const p of [path, metaPath(path)]) {
      try {
        await Deno.remove(p);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) continue;
        throw mapError(e);
      }
    }
  }

  async probe(): Promise<void> {
    await this.#checkRoot();
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

  /** Removes the temporary files of puts to `key` that a crash interrupted. */
  async abortIncompleteUploads(key: string): Promise<number> {
    const path = this.#path(key);
    await this.#checkRoot();
    const prefix = `${TEMP}${await nameTag(path)}-`;
    let removed = 0;
    try {
      for await (const e of Deno.readDir(dirname(path))) {
        if (!e.isFile || !e.name.startsWith(prefix)) continue;
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

  async #walk(rel: string, prefix: string, out: ObjectInfo[]): Promise<void> {
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
        if (k.startsWith(prefix) || prefix.startsWith(k)) await this.#walk(key, prefix, out);
      } else if (entry.isFile && key.startsWith(prefix)) {
        const info = await Deno.stat(join(this.#root, key)).catch(() => undefined);
        if (info) out.push({ key, size: info.size, lastModified: info.mtime ?? new Date(0) });
      }
    }
  }

  async #writeMeta(path: string, metadata: Record<string, string>): Promise<void> {
    const meta = metaPath(path);
    if (Object.keys(metadata).length === 0) {
      await Deno.remove(meta).catch(() => {});
      return;
    }
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

  async #readMeta(path: string): Promise<Record<string, string>> {
    try {
      const parsed: unknown = JSON.parse(await Deno.readTextFile(metaPath(path)));
      if (parsed && typeof parsed === "object") {
        return Object.fromEntries(
          Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === "string"),
        );
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw mapError(e);
    }
    return {};
  }
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

function metaPath(path: string): string {
  return join(dirname(path), `${META}${path.slice(path.lastIndexOf("/") + 1)}.json`);
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
