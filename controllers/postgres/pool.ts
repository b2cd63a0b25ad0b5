/**
 * Connections to PostgreSQL servers. One {@link ServerPool} per server and admin identity
 * (host, port, user, sslMode), holding at most `maxConnections` connections across all databases
 * of that server: managed servers have small connection limits, and a burst of reconciles must not
 * exhaust them.
 *
 * Each connection is its own postgres.js client with `max: 1` (a "slot" bound to one database).
 * A request for database D takes an idle slot of D, opens a new slot while below the bound, or
 * closes an idle slot of another database to make room; otherwise it waits. postgres.js closes the
 * socket of a slot idle for `idleTimeoutSeconds` and reopens it on the next use.
 */
import { checkServerIdentity } from "node:tls";
import postgres from "postgres";
import type { Logger } from "../runtime/log.ts";
import { nullLogger } from "../runtime/log.ts";

/** postgres.js client type used across this module. */
export type Sql = postgres.Sql<Record<string, never>>;

/** libpq's TLS modes that dbtether supports (no `prefer`/`allow`: no silent plaintext). */
/** libpq modes; `prefer` (libpq's default) is only reachable through the libpq environment. */
export type SslMode = "disable" | "prefer" | "require" | "verify-ca" | "verify-full";
export const SSL_MODES: readonly SslMode[] = ["disable", "require", "verify-ca", "verify-full"];

/** How to reach one server as its admin role. */
export interface ServerConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Default `require`. */
  sslMode?: SslMode;
  /** PEM CA bundle for verify-ca/verify-full (and for require, which then verifies the CA, as libpq). */
  ca?: string;
  /** Connections across all databases of this server; default 5. */
  maxConnections?: number;
  /** Seconds before an idle connection is closed; default 60. */
  idleTimeoutSeconds?: number;
  /** Seconds to wait for a connection; default 10. */
  connectTimeoutSeconds?: number;
  /** Database for server-level statements; default `postgres`. */
  maintenanceDatabase?: string;
  /** Shown in pg_stat_activity; default `dbtether`. */
  applicationName?: string;
}

/** Options of {@link ServerPool.run}. */
export interface RunOptions {
  /** Database to connect to; default the maintenance database. */
  database?: string;
  signal?: AbortSignal;
}

/** Options of {@link PoolRegistry}. */
export interface PoolRegistryOptions {
  logger?: Logger;
}

/** The key of a server pool: which server, as whom, how. Credentials are not part of it. */
export function poolKey(cfg: ServerConfig): string {
  return JSON.stringify([cfg.host, cfg.port, cfg.user, cfg.sslMode ?? "require"]);
}

/** Everything that, when it changes, needs new connections (the password and CA included). */
function fingerprint(cfg: ServerConfig): string {
  return JSON.stringify([
    cfg.password,
    cfg.ca ?? null,
    cfg.maxConnections ?? null,
    cfg.idleTimeoutSeconds ?? null,
    cfg.connectTimeoutSeconds ?? null,
    cfg.maintenanceDatabase ?? null,
    cfg.applicationName ?? null,
  ]);
}

/** TLS options for postgres.js from a libpq-style mode. */
export function tlsOptions(
  mode: SslMode,
  opts: { ca?: string; host?: string } = {},
): false | "prefer" | "require" | Record<string, unknown> {
  switch (mode) {
    case "disable":
      return false;
    case "prefer":
      // TLS when the server offers it, plaintext otherwise: what libpq does by default.
      return "prefer";
    case "require":
      // libpq: with a root certificate, require behaves like verify-ca.
      return opts.ca === undefined ? "require" : tlsOptions("verify-ca", opts);
    case "verify-ca":
      // The chain is checked against the CA; the name in the certificate is not.
      return { rejectUnauthorized: true, ca: opts.ca, checkServerIdentity: () => undefined };
    case "verify-full": {
      // postgres.js sends no servername for an IP address, and node:tls then checks the
      // certificate against "localhost": check against the host we dialled instead.
      const host = opts.host;
      const check = host === undefined
        ? {}
        : { checkServerIdentity: (_: string, cert: never) => checkServerIdentity(host, cert) };
      return {
        rejectUnauthorized: true,
        ...(opts.ca === undefined ? {} : { ca: opts.ca }),
        ...check,
      };
    }
  }
}

interface Slot {
  database: string;
  sql: Sql;
  busy: boolean;
  lastUsed: number;
}

/** A bounded set of connections to one server, shared by all its databases. */
export class ServerPool {
  readonly key: string;
  readonly max: number;
  readonly #cfg: ServerConfig;
  readonly #log: Logger;
  #slots: Slot[] = [];
  #waiters: (() => void)[] = [];
  #closing = 0;
  #closed = false;
  #peak = 0;

  constructor(cfg: ServerConfig, opts: PoolRegistryOptions = {}) {
    this.#cfg = { ...cfg };
    this.key = poolKey(cfg);
    this.max = Math.max(1, cfg.maxConnections ?? 5);
    this.#log = opts.logger ?? nullLogger;
  }

  /** Server host and port, for messages. */
  get endpoint(): string {
    return `${this.#cfg.host}:${this.#cfg.port}`;
  }

  /** Highest number of slots open at once (for tests of the bound). */
  get peakSlots(): number {
    return this.#peak;
  }

  /** Runs `fn` on a connection to a database of this server, within the server's bound. */
  async run<T>(fn: (sql: Sql) => Promise<T>, opts: RunOptions = {}): Promise<T> {
    const database = opts.database ?? this.#cfg.maintenanceDatabase ?? "postgres";
    const slot = await this.#acquire(database, opts.signal);
    try {
      return await fn(slot.sql);
    } finally {
      slot.busy = false;
      slot.lastUsed = Date.now();
      this.#waiters.shift()?.();
    }
  }

  /**
   * Runs `fn` on a fresh connection as another role (to verify a password by logging in), counted
   * against the same bound and closed afterwards.
   */
  async withLogin<T>(
    login: { user: string; password: string },
    fn: (sql: Sql) => Promise<T>,
    opts: RunOptions = {},
  ): Promise<T> {
    const database = opts.database ?? this.#cfg.maintenanceDatabase ?? "postgres";
    const slot = await this.#acquire(database, opts.signal, login);
    try {
      return await fn(slot.sql);
    } finally {
      this.#slots = this.#slots.filter((s) => s !== slot);
      this.#closing++;
      try {
        await slot.sql.end({ timeout: 5 });
      } finally {
        this.#closing--;
        this.#waiters.shift()?.();
      }
    }
  }

  async #acquire(
    database: string,
    signal?: AbortSignal,
    login?: { user: string; password: string },
  ): Promise<Slot> {
    for (;;) {
      if (this.#closed) throw new Error(`Cannot use the pool of ${this.endpoint}: it is closed`);
      signal?.throwIfAborted();
      const idle = login ? undefined : this.#slots.find((s) => !s.busy && s.database === database);
      if (idle) {
        idle.busy = true;
        return idle;
      }
      // A slot being closed still holds its socket: it counts against the bound until it is gone.
      if (this.#slots.length + this.#closing < this.max) return this.#open(database, login);
      const victim = this.#slots.filter((s) => !s.busy).sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (victim) {
        this.#slots = this.#slots.filter((s) => s !== victim);
        this.#closing++;
        try {
          await victim.sql.end({ timeout: 5 });
        } finally {
          this.#closing--;
        }
        continue;
      }
      await this.#wait(signal);
    }
  }

  #open(database: string, login?: { user: string; password: string }): Slot {
    const cfg = this.#cfg;
    const sql = postgres({
      host: cfg.host,
      port: cfg.port,
      user: login?.user ?? cfg.user,
      password: login?.password ?? cfg.password,
      database,
      ssl: tlsOptions(cfg.sslMode ?? "require", optional({ ca: cfg.ca, host: cfg.host })),
      max: 1,
      idle_timeout: cfg.idleTimeoutSeconds ?? 60,
      connect_timeout: cfg.connectTimeoutSeconds ?? 10,
      // Statements are logged by the executor in redacted form only; postgres.js must not log.
      debug: false,
      onnotice: () => {},
      // Catalog queries are few and varied: no prepared statements to leak per connection.
      prepare: false,
      fetch_types: false,
      connection: { application_name: cfg.applicationName ?? "dbtether" },
    }) as unknown as Sql;
    // A login slot is never reused: `busy` stays true until withLogin closes it.
    const slot: Slot = { database, sql, busy: true, lastUsed: Date.now() };
    this.#slots.push(slot);
    this.#peak = Math.max(this.#peak, this.#slots.length + this.#closing);
    this.#log.debug("pool slot opened", { server: this.endpoint, database });
    return slot;
  }

  #wait(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(wake);
    });
  }

  /** Closes every connection (waiting up to `timeoutSeconds` for running queries). */
  async close(timeoutSeconds = 5): Promise<void> {
    this.#closed = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w(); // they see #closed and throw
    const slots = this.#slots;
    this.#slots = [];
    await Promise.all(slots.map((s) => s.sql.end({ timeout: timeoutSeconds })));
  }
}

/**
 * The process-wide set of server pools, keyed by {@link poolKey}. Asking with changed credentials
 * (the admin password rotated, a new CA) closes the old pool and builds a new one.
 */
export class PoolRegistry {
  #pools = new Map<string, { pool: ServerPool; fingerprint: string }>();
  readonly #opts: PoolRegistryOptions;

  constructor(opts: PoolRegistryOptions = {}) {
    this.#opts = opts;
  }

  /** The pool for `cfg`, rebuilt when its credentials changed since the last call. */
  async get(cfg: ServerConfig): Promise<ServerPool> {
    const key = poolKey(cfg);
    const fp = fingerprint(cfg);
    const have = this.#pools.get(key);
    if (have && have.fingerprint === fp) return have.pool;
    if (have) {
      this.#pools.delete(key);
      await have.pool.close();
    }
    const pool = new ServerPool(cfg, this.#opts);
    this.#pools.set(key, { pool, fingerprint: fp });
    return pool;
  }

  /** Closes and forgets the pool of a server (e.g. its DBCluster was deleted). */
  async drop(cfg: Pick<ServerConfig, "host" | "port" | "user" | "sslMode">): Promise<void> {
    const key = poolKey(cfg as ServerConfig);
    const have = this.#pools.get(key);
    this.#pools.delete(key);
    await have?.pool.close();
  }

  /** Closes all pools. */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.pool.close()));
  }
}

// exactOptionalPropertyTypes: drop keys whose value is undefined.
function optional<T extends Record<string, unknown>>(
  o: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never;
}
