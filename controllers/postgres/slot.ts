/**
 * One connection of a {@link ServerPool}: a postgres.js client with `max: 1`, bound to one
 * database. Before a run's first statement passes the fence, the slot makes sure its connection
 * is open (a `SELECT 1` when it is not), so the connection (TCP, TLS, authentication) is
 * established first and a statement that passed the fence is written at once rather than after
 * a connect that may outlast the lease.
 *
 * With leader election the server itself ends our sessions that sit idle, in or out of a
 * transaction, for `idleLimitMs` (shorter than leaseDuration − renewDeadline): a replica frozen
 * between the fence check of a statement and its write then finds its session gone, so the
 * statement cannot run after a successor has started. `idle_session_timeout` exists from
 * PostgreSQL 14 on; on older servers only the transaction limit applies.
 */
import postgres from "postgres";

/** postgres.js client type used across this module. */
export type Sql = postgres.Sql<Record<string, never>>;

/** What a slot needs to connect; see ServerConfig for each field. */
export interface SlotConfig {
  host: string;
  port: number;
  user: string;
  /** A function is called for each connection (a token, pool.ts). */
  password: string | (() => Promise<string>);
  database: string;
  ssl: false | "prefer" | "require" | Record<string, unknown>;
  idleTimeoutSeconds: number;
  connectTimeoutSeconds: number;
  applicationName: string;
  /** Server-side idle limits of our sessions, in milliseconds; none when undefined. */
  idleLimitMs: number | undefined;
  /** Whether the server has idle_session_timeout (PostgreSQL ≥ 14); false when unknown. */
  idleSessionTimeout: boolean;
  /** Sessions refuse writes (`default_transaction_read_only=on`). */
  readOnly?: boolean;
  /** Called with the server's major version when a connection learns it. */
  onServerMajor?: (major: number) => void;
}

export class Slot {
  readonly database: string;
  busy = true;
  lastUsed = Date.now();
  /** Whether this slot's sessions carry every server-side limit the pool wants. */
  readonly limited: boolean;
  readonly sql: Sql;
  #open = false;

  constructor(cfg: SlotConfig) {
    this.database = cfg.database;
    const limits: Record<string, string> = {};
    if (cfg.idleLimitMs !== undefined) {
      const ms = String(Math.max(1, Math.floor(cfg.idleLimitMs)));
      limits.idle_in_transaction_session_timeout = ms;
      if (cfg.idleSessionTimeout) limits.idle_session_timeout = ms;
    }
    this.limited = cfg.idleLimitMs === undefined || cfg.idleSessionTimeout;
    // The client closes an idle connection before the server's limit would end it.
    const idle = cfg.idleLimitMs === undefined
      ? cfg.idleTimeoutSeconds
      : Math.min(cfg.idleTimeoutSeconds, cfg.idleLimitMs / 2000);
    this.sql = postgres({
      host: cfg.host,
      port: cfg.port,
      user: cfg.user,
      password: cfg.password,
      database: cfg.database,
      ssl: cfg.ssl,
      max: 1,
      idle_timeout: idle,
      connect_timeout: cfg.connectTimeoutSeconds,
      // Statements are logged by the executor in redacted form only; postgres.js must not log.
      debug: false,
      onnotice: () => {},
      onclose: () => {
        this.#open = false;
      },
      onparameter: (key: string, value: string) => {
        const major = Number(/^(\d+)/.exec(value)?.[1]);
        if (key === "server_version" && major) cfg.onServerMajor?.(major);
      },
      // Catalog queries are few and varied: no prepared statements to leak per connection.
      prepare: false,
      fetch_types: false,
      // pg_catalog first and only: an owner role may `ALTER DATABASE ... SET search_path` to
      // schemas it controls, and our catalog queries call functions and operators by their
      // bare names; a startup parameter outranks database and role settings.
      connection: {
        application_name: cfg.applicationName,
        search_path: "pg_catalog, pg_temp",
        ...limits,
        ...(cfg.readOnly ? { default_transaction_read_only: true } : {}),
      },
    }) as unknown as Sql;
  }

  /**
   * Opens the connection unless it is open; rejects when `signal` aborts first. A slot that sat
   * idle longer than `o.checkIdleMs` is probed even when it looks open: a server that restarted
   * meanwhile leaves a socket the client has not yet seen close, and the run's first statement
   * would fail on it (runs never reconnect mid-way). A probe that finds the connection lost
   * connects once more; nothing of the run has been sent yet, so that is safe.
   */
  async ready(signal: AbortSignal, o: { checkIdleMs?: number } = {}): Promise<void> {
    const idle = Date.now() - this.lastIdleSince;
    if (this.#open && (o.checkIdleMs === undefined || idle <= o.checkIdleMs)) return;
    for (let attempt = 0;; attempt++) {
      try {
        await this.#probe(signal);
        break;
      } catch (e) {
        if (attempt > 0 || signal.aborted || !connectionLost(e)) throw e;
        this.#open = false;
      }
    }
    this.#open = true;
  }

  /** When the slot last finished a run (set by the pool). */
  lastIdleSince = Date.now();

  #probe(signal: AbortSignal): Promise<void> {
    const probe = this.sql`SELECT 1`;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      probe.then(() => resolve(), reject).finally(() =>
        signal.removeEventListener("abort", onAbort)
      );
    });
  }

  /** Whether the connection is open (it was opened by {@link ready} and has not closed since). */
  get open(): boolean {
    return this.#open;
  }

  /** Ends the connection, waiting up to `timeoutSeconds` for a running statement. */
  end(timeoutSeconds = 5): Promise<void> {
    return this.sql.end({ timeout: timeoutSeconds });
  }
}

const LOST = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "ECONNRESET",
  "EPIPE",
  "57P01", // admin_shutdown: the server restarted
  "57P02", // crash_shutdown
]);

/** Whether a failure says the connection is gone (rather than the statement failed). */
function connectionLost(e: unknown): boolean {
  const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
  return LOST.has(code);
}
