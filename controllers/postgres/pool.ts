/**
 * Connections to PostgreSQL servers. One {@link ServerPool} per *owner* (a DBCluster, or the
 * operator's libpq environment), holding at most that owner's `maxConnections` connections across
 * all databases of its server: managed servers have small connection limits, and a burst of
 * reconciles must not exhaust them.
 *
 * Why per owner and not per server: two DBClusters may name the same host, port and user with
 * different settings (maxConnections, password, CA, timeouts). A pool shared by server key has
 * one set of settings, so each DBCluster's resolve found the other's settings and rebuilt the
 * pool, closing connections in use, on every reconcile. Keyed by owner, each DBCluster's pool is
 * rebuilt only when its own settings change, and each keeps its own bound: two DBClusters on one
 * server may together open the sum of their bounds, which is what their specs say.
 *
 * Each connection is its own postgres.js client with `max: 1` (a "slot" bound to one database).
 * A request for database D takes an idle slot of D, opens a new slot while below the bound, or
 * closes an idle slot of another database to make room; otherwise it waits. postgres.js closes the
 * socket of a slot idle for `idleTimeoutSeconds` and reopens it on the next use. A run reserves
 * its slot's connection before its first statement (slot.ts), and every statement passes the
 * leader fence (guard.ts). After a connect timeout the pool holds off connecting for a while
 * (hold_off.ts), so a server that never answers does not hold a worker per run; before its first
 * answer (and after a failed connect) a server gets one connect at a time, which no run waits
 * for longer than 2 s (#connectUnproven). The registry of pools is in registry.ts.
 */
import { checkServerIdentity } from "node:tls";
import { looksLikeTlsRefusal, serverAcceptsTls, tlsRefusedError } from "./tls_probe.ts";
import { type Fence, OPEN_FENCE } from "../../lib/fence.ts";
import type { Logger } from "../../lib/log.ts";
import { nullLogger } from "../../lib/log.ts";
import { StatementGuard } from "./guard.ts";
import { ConnectHoldOff } from "./hold_off.ts";
import { Slot } from "./slot.ts";
import type { TokenSource } from "./iam.ts";
import { type ReachabilityListener, serverWideFailure } from "./reachability.ts";

export type { Sql } from "./slot.ts";
import type { Sql } from "./slot.ts";

/**
 * The longest a run waits for a connect to a server not yet known to answer: a worker's cost of
 * a server that never answers (#connectUnproven). Well above a TLS + SCRAM login on a loaded
 * machine, far below the connect timeout.
 */
const UNPROVEN_PATIENCE_MS = 2000;

/** A slot idle longer than this is probed before a run (slot.ts `ready` says why). */
const IDLE_CHECK_MS = 1000;

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
  /**
   * A token per new connection instead of `password` (cloud IAM login, iam.ts); each
   * connection the pool opens asks it, so a refreshed token is used from then on.
   */
  passwordSource?: TokenSource;
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
  /** Shown in pg_stat_activity; default the registry's, else `dbtether`. */
  applicationName?: string;
}

/** Options of {@link ServerPool.run}. */
export interface RunOptions {
  /** Database to connect to; default the maintenance database. */
  database?: string;
  signal?: AbortSignal;
}

/** Options of {@link PoolRegistry} and {@link ServerPool}. */
export interface PoolRegistryOptions {
  logger?: Logger;
  /**
   * Every statement passes this fence before it is sent, and statements in flight are cancelled
   * when it closes (the leader lease was lost). Default: always open.
   */
  fence?: Fence;
  /**
   * application_name of sessions whose ServerConfig names none; the registry appends each pool's
   * owner (`dbtether@<replica>/DBCluster/<name>`), so pg_stat_activity and the server log tell
   * replicas and DBClusters apart. Default `dbtether`.
   */
  applicationName?: string;
  /**
   * With leader election: the server ends our sessions idle (in or out of a transaction) this
   * long; must be shorter than leaseDuration − renewDeadline (slot.ts says why).
   */
  sessionIdleLimitMs?: number;
  /**
   * Every session starts with `default_transaction_read_only=on`: the server refuses any write
   * (`dbtether plan` reads the catalog only, and must not change a thing even by mistake).
   */
  readOnly?: boolean;
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

/** A bounded set of connections to one server, shared by all its databases. */
export class ServerPool {
  readonly max: number;
  readonly #cfg: ServerConfig;
  readonly #log: Logger;
  readonly #fence: Fence;
  readonly #appName: string;
  readonly #idleLimitMs: number | undefined;
  readonly #readOnly: boolean;
  #major: number | undefined;
  #slots: Slot[] = [];
  #waiters: (() => void)[] = [];
  #closing = 0;
  #closed = false;
  #peak = 0;
  readonly #holdOff: ConnectHoldOff;
  /** Whether the last connect that ended succeeded (see #connectUnproven). */
  #proven = false;
  /** The one connect in flight while the server is unproven. */
  #firstConnect: Promise<void> | undefined;
  /** What the last connect said of the server; undefined before the first (reachability.ts). */
  #reachable: boolean | undefined;
  readonly #onReachability: ReachabilityListener | undefined;

  constructor(
    cfg: ServerConfig,
    opts: PoolRegistryOptions & { onReachability?: ReachabilityListener } = {},
  ) {
    this.#cfg = { ...cfg };
    this.max = Math.max(1, cfg.maxConnections ?? 5);
    this.#log = opts.logger ?? nullLogger;
    this.#fence = opts.fence ?? OPEN_FENCE;
    this.#appName = cfg.applicationName ?? opts.applicationName ?? "dbtether";
    this.#idleLimitMs = opts.sessionIdleLimitMs;
    this.#readOnly = opts.readOnly ?? false;
    this.#onReachability = opts.onReachability;
    // Three connect timeouts: a server that never answers costs one worker a third of the time.
    this.#holdOff = new ConnectHoldOff(3000 * (cfg.connectTimeoutSeconds ?? 10));
  }

  /** Server host and port, for messages. */
  get endpoint(): string {
    return `${this.#cfg.host}:${this.#cfg.port}`;
  }

  /** Highest number of slots open at once (for tests of the bound). */
  get peakSlots(): number {
    return this.#peak;
  }

  /**
   * Runs `fn` on a connection to a database of this server, within the server's bound. Each
   * statement of `fn` passes the fence; those in flight are cancelled when the fence closes or
   * `opts.signal` aborts, and the run then rejects with that reason.
   */
  run<T>(fn: (sql: Sql) => Promise<T>, opts: RunOptions = {}): Promise<T> {
    return this.#run(fn, opts);
  }

  /**
   * Runs `fn` on a fresh connection as another role (to verify a password by logging in), counted
   * against the same bound and closed afterwards.
   */
  withLogin<T>(
    login: { user: string; password: string },
    fn: (sql: Sql) => Promise<T>,
    opts: RunOptions = {},
  ): Promise<T> {
    return this.#run(fn, opts, login);
  }

  async #run<T>(
    fn: (sql: Sql) => Promise<T>,
    opts: RunOptions,
    login?: { user: string; password: string },
  ): Promise<T> {
    const database = opts.database ?? this.#cfg.maintenanceDatabase ?? "postgres";
    const guard = new StatementGuard(this.#fence, opts.signal);
    const stop = this.#stopSignal(opts.signal);
    try {
      guard.admit();
      const slot = await this.#acquire(database, stop, login);
      try {
        // A token that cannot be had fails the run here, with its reason (tokenOrPassword).
        if (!login && !slot.open) await this.#cfg.passwordSource?.token();
        // Connected before the first statement passes the fence (slot.ts says why).
        await this.#connect(slot, stop);
        return await fn(guard.wrap(slot.sql, () => slot.open));
      } finally {
        await this.#finish(slot, login === undefined);
      }
    } catch (e) {
      throw await this.#explainTls(guard.cause(e));
    } finally {
      guard.end();
    }
  }

  // A server that never answers must not hold a worker per run (hold_off.ts says why).
  async #connect(slot: Slot, signal: AbortSignal): Promise<void> {
    if (!this.#proven) return await this.#connectUnproven(slot, signal);
    const trying = this.#holdOff.admit();
    try {
      await slot.ready(signal, { checkIdleMs: IDLE_CHECK_MS });
      this.#holdOff.settle(trying);
      this.#sawReach(true);
    } catch (e) {
      this.#holdOff.settle(trying, e);
      this.#proven = false;
      if (!signal.aborted) this.#sawReach(false, e);
      throw e;
    }
  }

  // Tells the listener when the server stops answering, or answers again after that; a refusal
  // of one database (reachability.ts) says nothing of the server.
  #sawReach(ok: boolean, e?: unknown): void {
    if (!ok && !serverWideFailure(e)) return;
    const before = this.#reachable;
    this.#reachable = ok;
    if (ok ? before === false : before !== false) this.#onReachability?.(ok);
  }

  /**
   * A server not yet known to answer (no connect yet, or the last one failed): one connect at a
   * time, and no run waits for it longer than {@link UNPROVEN_PATIENCE_MS}. The connect goes on
   * without the run (its slot stays in the pool), so a server that accepts TCP and never
   * answers costs each worker that long once instead of the whole connect timeout (issue 13,
   * fairness); runs meanwhile wait for that connect, within the same patience, or fail at once
   * with the last timeout's error when the server timed out before (hold_off.ts).
   */
  async #connectUnproven(slot: Slot, signal: AbortSignal): Promise<void> {
    const pending = this.#firstConnect;
    // A server that timed out before fails the others at once while it is tried again.
    if (pending && this.#holdOff.lastTimeout !== undefined) throw this.#holdOff.lastTimeout;
    if (pending) {
      await this.#patiently(pending, signal);
      return await this.#connect(slot, signal);
    }
    const trying = this.#holdOff.admit();
    const attempt = slot.ready(this.#fence.signal, { checkIdleMs: IDLE_CHECK_MS }).then(
      () => {
        this.#holdOff.settle(trying);
        this.#proven = true;
        this.#sawReach(true);
      },
      (e) => {
        this.#holdOff.settle(trying, e);
        if (!this.#fence.signal.aborted) this.#sawReach(false, e);
        throw e;
      },
    ).finally(() => {
      if (this.#firstConnect === attempt) this.#firstConnect = undefined;
    });
    attempt.catch(() => {}); // its error reaches the runs that wait for it
    this.#firstConnect = attempt;
    await this.#patiently(attempt, signal);
  }

  // Waits for `connect` at most UNPROVEN_PATIENCE_MS (and never past `signal`).
  async #patiently(connect: Promise<void>, signal: AbortSignal): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const cfg = this.#cfg;
    const patience = Math.min(UNPROVEN_PATIENCE_MS, 1000 * (cfg.connectTimeoutSeconds ?? 10));
    try {
      await Promise.race([
        connect,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() =>
            reject(Object.assign(
              new Error(
                `no answer within ${patience / 1000}s, the connection attempt goes on ` +
                  `(connect timeout ${cfg.connectTimeoutSeconds ?? 10}s)`,
              ),
              { code: "CONNECT_TIMEOUT" },
            )), patience);
          onAbort = () => reject(signal.reason);
          signal.addEventListener("abort", onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Closes the idle connections to `databases`: their sessions were just ended on the server
   * (pg_terminate_backend before a rename or a drop), and a socket the client has not yet seen
   * close would fail the next run's first statement.
   */
  async closeIdle(databases: readonly string[]): Promise<void> {
    const names = new Set(databases);
    const idle = this.#slots.filter((s) => !s.busy && names.has(s.database));
    if (!idle.length) return;
    this.#slots = this.#slots.filter((s) => !idle.includes(s));
    this.#closing += idle.length;
    try {
      await Promise.all(idle.map((s) => s.end().catch(() => {})));
    } finally {
      this.#closing -= idle.length;
      for (const _ of idle) this.#waiters.shift()?.();
    }
  }

  // A server that declines TLS makes postgres.js fail with a socket error: say what to set.
  async #explainTls(e: unknown): Promise<unknown> {
    const mode = this.#cfg.sslMode ?? "require";
    if (mode === "disable" || !looksLikeTlsRefusal(e)) return e;
    if ((await serverAcceptsTls(this.#cfg.host, this.#cfg.port)) !== false) return e;
    return tlsRefusedError(this.endpoint, mode, e);
  }

  // A slot goes back to the pool unless it was a login's, or it lacks the session limits the
  // server is now known to offer (a new one opens with them on demand).
  async #finish(slot: Slot, reuse: boolean): Promise<void> {
    if (reuse && (slot.limited || !this.#wantsSessionLimit())) {
      slot.busy = false;
      slot.lastUsed = slot.lastIdleSince = Date.now();
      this.#waiters.shift()?.();
      return;
    }
    this.#slots = this.#slots.filter((s) => s !== slot);
    this.#closing++;
    try {
      await slot.end();
    } finally {
      this.#closing--;
      this.#waiters.shift()?.();
    }
  }

  // Whether the server is known to offer idle_session_timeout, which we then want everywhere.
  #wantsSessionLimit(): boolean {
    return this.#idleLimitMs !== undefined && (this.#major ?? 0) >= 14;
  }

  // A run waiting for a slot gives up when its own signal aborts or the fence closes.
  #stopSignal(signal: AbortSignal | undefined): AbortSignal {
    return signal ? AbortSignal.any([signal, this.#fence.signal]) : this.#fence.signal;
  }

  async #acquire(
    database: string,
    signal: AbortSignal,
    login?: { user: string; password: string },
  ): Promise<Slot> {
    for (;;) {
      if (this.#closed) throw new Error(`Cannot use the pool of ${this.endpoint}: it is closed`);
      signal.throwIfAborted();
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
          await victim.end();
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
    // A login slot is never reused: it is closed after its run.
    const slot = new Slot({
      host: cfg.host,
      port: cfg.port,
      user: login?.user ?? cfg.user,
      password: login?.password ?? tokenOrPassword(cfg),
      database,
      ssl: tlsOptions(cfg.sslMode ?? "require", optional({ ca: cfg.ca, host: cfg.host })),
      idleTimeoutSeconds: cfg.idleTimeoutSeconds ?? 60,
      connectTimeoutSeconds: cfg.connectTimeoutSeconds ?? 10,
      applicationName: this.#appName,
      idleLimitMs: this.#idleLimitMs,
      idleSessionTimeout: this.#wantsSessionLimit(),
      readOnly: this.#readOnly,
      onServerMajor: (major) => (this.#major = major),
    });
    this.#slots.push(slot);
    this.#peak = Math.max(this.#peak, this.#slots.length + this.#closing);
    this.#log.debug("pool slot opened", {
      server: this.endpoint,
      database,
      application: this.#appName,
    });
    return slot;
  }

  #wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
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
    await Promise.all(slots.map((s) => s.end(timeoutSeconds)));
  }
}

// exactOptionalPropertyTypes: drop keys whose value is undefined.
function optional<T extends Record<string, unknown>>(
  o: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never;
}

/**
 * What postgres.js gets as the password: a function when the password is a token. postgres.js
 * calls it inside a message handler that does not catch a rejection (it would be unhandled and
 * end the process), so a failure gives an empty password, which the server refuses; the run
 * fetched the token just before connecting, so its reason was reported there.
 */
function tokenOrPassword(cfg: ServerConfig): string | (() => Promise<string>) {
  const source = cfg.passwordSource;
  return source ? () => source.token().catch(() => "") : cfg.password;
}
