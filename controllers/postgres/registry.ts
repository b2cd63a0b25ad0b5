/**
 * The process-wide set of connection pools, one per owner: why per owner and not per server is
 * explained in pool.ts. Session names carry the replica and the owner.
 */
import { truncateBytes } from "./names.ts";
import { type PoolRegistryOptions, type ServerConfig, ServerPool } from "./pool.ts";
import { MAX_IDENTIFIER_BYTES } from "./quote.ts";

/** What a pool's sessions are called: the replica's tag, then the owner, within 63 bytes. */
export function sessionName(tag: string, owner: string): string {
  // PostgreSQL keeps NAMEDATALEN-1 bytes; the replica's tag comes first so it always survives.
  return truncateBytes(`${tag}/${owner}`, MAX_IDENTIFIER_BYTES);
}

/** Everything that, when it changes, needs new connections (the password and CA included). */
function fingerprint(cfg: ServerConfig): string {
  return JSON.stringify([
    cfg.host,
    cfg.port,
    cfg.user,
    cfg.sslMode ?? "require",
    cfg.password,
    cfg.passwordSource?.id ?? null,
    cfg.ca ?? null,
    cfg.maxConnections ?? null,
    cfg.idleTimeoutSeconds ?? null,
    cfg.connectTimeoutSeconds ?? null,
    cfg.maintenanceDatabase ?? null,
    cfg.applicationName ?? null,
  ]);
}

/**
 * The process-wide set of pools, one per owner (a DBCluster's name, or the libpq environment).
 * Asking with changed settings for the same owner (the admin password rotated, a new CA, another
 * maxConnections) closes that owner's old pool and builds a new one; other owners are untouched.
 */
export class PoolRegistry {
  #pools = new Map<string, { pool: ServerPool; fingerprint: string }>();
  readonly #opts: PoolRegistryOptions;
  readonly #listeners: ((owner: string, reachable: boolean) => void)[] = [];

  constructor(opts: PoolRegistryOptions = {}) {
    this.#opts = opts;
  }

  /** The pool of `opts.owner` for `cfg`, rebuilt when its settings changed since the last call. */
  async get(cfg: ServerConfig, opts: { owner: string }): Promise<ServerPool> {
    const key = opts.owner;
    const fp = fingerprint(cfg);
    const have = this.#pools.get(key);
    if (have && have.fingerprint === fp) return have.pool;
    const pool = new ServerPool(cfg, {
      ...this.#opts,
      applicationName: sessionName(this.#opts.applicationName ?? "dbtether", key),
      onReachability: (reachable) => {
        if (this.#pools.get(key)?.pool !== pool) return; // replaced meanwhile
        for (const l of this.#listeners) l(key, reachable);
      },
    });
    this.#pools.set(key, { pool, fingerprint: fp });
    if (have) {
      this.#opts.logger?.debug("pool rebuilt: its settings changed", { owner: key });
      await have.pool.close();
    }
    return pool;
  }

  /**
   * Calls `listener` when an owner's server stops answering a connect, or answers again after
   * that (a refused database of its own does not count: reachability.ts).
   */
  onReachability(listener: (owner: string, reachable: boolean) => void): void {
    this.#listeners.push(listener);
  }

  /** Closes and forgets the pool of an owner (e.g. its DBCluster was deleted). */
  async drop(owner: string): Promise<void> {
    const have = this.#pools.get(owner);
    this.#pools.delete(owner);
    await have?.pool.close();
  }

  /** Closes all pools. */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.pool.close()));
  }
}
