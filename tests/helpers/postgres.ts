/**
 * A throwaway PostgreSQL server for tests: initdb into a temp dir, listen on a free loopback port,
 * `log_statement=all` (each line tagged `user@database [application_name]`), SCRAM for TCP, and an admin role that is NOT superuser
 * (`LOGIN CREATEDB CREATEROLE`, like the RDS/Aurora master user or the Azure server admin).
 *
 * ```ts
 * await using pg = await startPostgres();
 * const r = await pg.psql("select 1", { user: pg.admin.user, password: pg.admin.password });
 * ```
 *
 * The bootstrap superuser is reachable only through the unix socket in the temp dir (trust), and
 * only for assertions (`superSql`); code under test must use `admin`.
 *
 * The server's major is `DBTETHER_PG_VERSION` (13–18, default the newest), from the servers
 * scripts/install-postgres.sh installs (pg_install.ts); `major` picks another one.
 */
import { freePort } from "./free_port.ts";
import { clientInstall, serverInstall } from "./pg_install.ts";
import { makeServerCerts } from "./tls.ts";

/** Result of running psql. */
export interface PsqlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link PgServer.psql}. Defaults: the admin role, database `postgres`. */
export interface PsqlOptions {
  user?: string;
  password?: string;
  database?: string;
}

/** Options of {@link startPostgres}. */
export interface StartPostgresOptions {
  /** Name of the non-superuser admin role; default `dbtether_admin`. */
  adminName?: string;
  /** Extra lines appended to postgresql.conf. */
  extraConf?: string[];
  /** The server's major; default `DBTETHER_PG_VERSION`, else the newest. */
  major?: number;
  /**
   * Makes the admin a member of a non-superuser group of this name with what RDS gives its
   * `rds_superuser` (NOLOGIN, member of pg_monitor and pg_signal_backend), like the master user of
   * RDS/Aurora (Azure's `azure_pg_admin` and Cloud SQL's `cloudsqlsuperuser` are alike).
   */
  adminGroup?: string;
  /**
   * TLS with a certificate for IP 127.0.0.1 signed by a CA made for this server (`caFile`);
   * default true, as every cloud server speaks TLS. False: a plaintext server (sslMode disable).
   */
  tls?: boolean;
  /**
   * 13/14: apply the one-time fix docs/design/privileges.md asks of operators (template1's
   * `public` owned as from 15, `publicSchemaFix`); default true. False shows the server as
   * initdb leaves it.
   */
  fixPublicSchema?: boolean;
  /** More loopback addresses to listen on, e.g. "127.0.0.2" (not in the certificate). */
  extraListen?: string[];
}

/** A running test server; `await using` stops it and removes its files. */
export interface PgServer extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  readonly admin: { readonly user: string; readonly password: string };
  /** The CA that signed the server certificate (PEM file); undefined without TLS. */
  readonly caFile: string | undefined;
  /** The bootstrap superuser (socket only). */
  readonly superuser: string;
  readonly socketDir: string;
  readonly logFile: string;
  /** The server's initdb/pg_ctl/postgres. */
  readonly binDir: string;
  /** psql, pg_dump and pg_restore for this server (the smallest installed major >= its own). */
  readonly clientDir: string;
  /** The server's major, e.g. 18. */
  readonly major: number;
  /** Short server version, e.g. "18.6". */
  readonly version: string;
  /** The temp dir holding data, socket and log. */
  readonly dir: string;
  /** Runs SQL (fed on stdin, so each statement runs on its own) with the real psql over TCP. */
  psql(sql: string, opts?: PsqlOptions): Promise<PsqlResult>;
  /** Runs SQL as the bootstrap superuser through the socket; throws when psql fails. */
  superSql(sql: string, opts?: { database?: string }): Promise<string>;
  /** The server log so far. */
  readLog(): Promise<string>;
  /** Stops the server (fast shutdown); `start()` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  running(): boolean;
}

const SUPERUSER = "postgres";

/**
 * A psql session over TCP as `login`, started in the background with `args` after the
 * connection flags (e.g. `["-c", "SELECT pg_sleep(120)"]`): for tests that keep a connection
 * open while something else happens. The caller ends it (kill, or `output()`).
 */
export function psqlSession(
  pg: PgServer,
  login: { user: string; password: string; database: string },
  o: { args: string[]; output: "piped" | "null" },
): Deno.ChildProcess {
  return new Deno.Command(`${pg.clientDir}/psql`, {
    args: ["-h", pg.host, "-p", String(pg.port), "-U", login.user, "-d", login.database, ...o.args],
    env: { PGPASSWORD: login.password },
    stdout: o.output,
    stderr: o.output,
  }).spawn();
}

/**
 * 13/14: the statement docs/design/privileges.md gives operators for template1: `public` owned
 * by pg_database_owner as from 15 (14), or by the admin role (13 has no pg_database_owner).
 */
export function publicSchemaFix(pg: Pick<PgServer, "major" | "admin">): string {
  const owner = pg.major >= 14 ? "pg_database_owner" : `"${pg.admin.user}"`;
  return `ALTER SCHEMA public OWNER TO ${owner}`;
}

/** Whether anything exists at `path`. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Starts a fresh server. Retries on a port taken between choosing and binding it. */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgServer> {
  const install = serverInstall(opts.major);
  const clients = clientInstall(install.major);
  const runAs = await serverOsUser();
  const dir = await Deno.makeTempDir({ prefix: "dbtether-pg-" });
  try {
    const server = new Server({
      dir,
      binDir: install.binDir,
      clientDir: clients.binDir,
      major: install.major,
      runAs,
      opts,
    });
    await server.init();
    return server;
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}

interface OsUser {
  /** Prefix for commands that must run as the server's OS user (empty when we are that user). */
  prefix: string[];
  uid: number | null;
  gid: number | null;
}

// The server refuses to run as root; as root we run it as Debian's `postgres` OS user.
async function serverOsUser(): Promise<OsUser> {
  if (Deno.uid() !== 0) return { prefix: [], uid: null, gid: null };
  const id = async (flag: string) => {
    const out = await new Deno.Command("id", { args: [flag, SUPERUSER], stderr: "null" }).output();
    if (!out.success) {
      throw new Error(
        "Cannot run PostgreSQL as root: no OS user 'postgres' (install postgresql from apt)",
      );
    }
    return Number(new TextDecoder().decode(out.stdout).trim());
  };
  return { prefix: ["runuser", "-u", SUPERUSER, "--"], uid: await id("-u"), gid: await id("-g") };
}

function randomPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

interface ServerInit {
  dir: string;
  binDir: string;
  clientDir: string;
  major: number;
  runAs: OsUser;
  opts: StartPostgresOptions;
}

class Server implements PgServer {
  readonly host = "127.0.0.1";
  caFile: string | undefined;
  port = 0;
  readonly admin: { user: string; password: string };
  readonly superuser = SUPERUSER;
  readonly socketDir: string;
  readonly logFile: string;
  readonly binDir: string;
  readonly clientDir: string;
  readonly major: number;
  readonly dir: string;
  version = "";
  #dataDir: string;
  #runAs: OsUser;
  #opts: StartPostgresOptions;
  #running = false;
  #disposed = false;

  constructor(init: ServerInit) {
    this.dir = init.dir;
    this.binDir = init.binDir;
    this.clientDir = init.clientDir;
    this.major = init.major;
    this.#runAs = init.runAs;
    this.#opts = init.opts;
    this.#dataDir = `${init.dir}/data`;
    this.socketDir = `${init.dir}/socket`;
    this.logFile = `${init.dir}/server.log`;
    this.admin = { user: init.opts.adminName ?? "dbtether_admin", password: randomPassword() };
  }

  async init(): Promise<void> {
    await Deno.mkdir(this.socketDir, { mode: 0o700 });
    await Deno.writeTextFile(this.logFile, "");
    const { uid, gid } = this.#runAs;
    if (uid !== null) {
      for (const p of [this.dir, this.socketDir, this.logFile]) await Deno.chown(p, uid, gid);
    }
    await this.#run("initdb", [
      "-D",
      this.#dataDir,
      "-U",
      SUPERUSER,
      "-E",
      "UTF8",
      "--no-locale",
      "--no-sync",
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
    ]);
    await this.#writeHba();
    if (this.#opts.tls ?? true) await this.#makeCerts();
    // Our settings live in their own file, so ALTER SYSTEM (postgresql.auto.conf) stays usable.
    await Deno.writeTextFile(`${this.#dataDir}/postgresql.conf`, "include 'dbtether.conf'\n", {
      append: true,
    });
    for (let attempt = 1;; attempt++) {
      this.port = freePort();
      await this.#writeConf();
      try {
        await this.start();
        break;
      } catch (e) {
        const log = await this.readLog();
        if (attempt >= 5 || !/could not bind|Address already in use/i.test(log)) throw e;
      }
    }
    const v = await this.superSql("SHOW server_version");
    this.version = v.match(/^\d+(\.\d+)?/)?.[0] ?? v.trim();
    const admin = `"${this.admin.user.replaceAll('"', '""')}"`;
    // The admin's password must not land in the log (log_statement=all): tests grep it for secrets.
    // createrole_self_grant stays unset (16+), as on the clouds.
    await this.superSql(
      `SET log_statement = 'none';
       CREATE ROLE ${admin} LOGIN CREATEDB CREATEROLE PASSWORD '${this.admin.password}';`,
    );
    if (this.major < 15 && (this.#opts.fixPublicSchema ?? true)) {
      await this.superSql(publicSchemaFix(this), { database: "template1" });
    }
    const group = this.#opts.adminGroup;
    if (group) {
      const g = `"${group.replaceAll('"', '""')}"`;
      await this.superSql(
        `CREATE ROLE ${g} NOLOGIN; GRANT pg_monitor, pg_signal_backend TO ${g};
         GRANT ${g} TO ${admin};`,
      );
    }
  }

  async #writeHba(): Promise<void> {
    // Socket: only the bootstrap superuser, for test inspection. TCP: SCRAM for everyone.
    const hba = [
      `local all ${SUPERUSER} trust`,
      "host all all 127.0.0.0/8 scram-sha-256",
      "",
    ].join("\n");
    await Deno.writeTextFile(`${this.#dataDir}/pg_hba.conf`, hba);
  }

  async #makeCerts(): Promise<void> {
    const tls = `${this.dir}/tls`;
    await Deno.mkdir(tls);
    const certs = await makeServerCerts(tls, {
      cn: "dbtether-test-pg",
      // libpq before 15 (the 14 client tools serve a 13 or 14 server) matches an IP host only
      // against DNS names; Node's TLS and libpq 15+ use the IP entry.
      subjectAltName: "IP:127.0.0.1,DNS:127.0.0.1",
    });
    // The server refuses a key others can read, and runs as the `postgres` OS user when we are root.
    await Deno.chmod(certs.keyFile, 0o600);
    const { uid, gid } = this.#runAs;
    if (uid !== null) {
      for (const f of [tls, certs.certFile, certs.keyFile]) await Deno.chown(f, uid, gid);
    }
    this.caFile = certs.caFile;
  }

  async #writeConf(): Promise<void> {
    const lines = [
      "# dbtether test server",
      `listen_addresses = '${[this.host, ...(this.#opts.extraListen ?? [])].join(",")}'`,
      ...(this.caFile
        ? ["ssl = on", "ssl_cert_file = '../tls/server.crt'", "ssl_key_file = '../tls/server.key'"]
        : []),
      `port = ${this.port}`,
      `unix_socket_directories = '${this.socketDir}'`,
      "log_statement = 'all'",
      // %a: the session's application_name, which tells dbtether replicas apart.
      "log_line_prefix = '%m [%p] %q%u@%d [%a] '",
      "log_connections = on",
      "password_encryption = 'scram-sha-256'",
      "fsync = off",
      "synchronous_commit = off",
      "full_page_writes = off",
      "shared_buffers = 32MB",
      "max_connections = 100",
      "logging_collector = off",
      ...(this.#opts.extraConf ?? []),
      "",
    ];
    await Deno.writeTextFile(`${this.#dataDir}/dbtether.conf`, lines.join("\n"));
  }

  async #run(tool: string, args: string[]): Promise<string> {
    const [cmd, ...rest] = [...this.#runAs.prefix, `${this.binDir}/${tool}`, ...args];
    const out = await new Deno.Command(cmd!, {
      args: rest,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      cwd: this.dir,
    }).output();
    const dec = new TextDecoder();
    if (!out.success) {
      throw new Error(`Cannot run ${tool}: exit ${out.code}: ${dec.decode(out.stderr).trim()}`);
    }
    return dec.decode(out.stdout);
  }

  running(): boolean {
    return this.#running;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    await this.#run("pg_ctl", ["-D", this.#dataDir, "-l", this.logFile, "-w", "-t", "60", "start"]);
    this.#running = true;
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    await this.#run("pg_ctl", ["-D", this.#dataDir, "-m", "fast", "-w", "-t", "60", "stop"]);
    this.#running = false;
  }

  psql(sql: string, opts: PsqlOptions = {}): Promise<PsqlResult> {
    const user = opts.user ?? this.admin.user;
    const password = opts.password ?? (user === this.admin.user ? this.admin.password : "");
    return this.#psql(sql, {
      args: [
        "-h",
        this.host,
        "-p",
        String(this.port),
        "-U",
        user,
        "-d",
        opts.database ?? "postgres",
      ],
      // The password goes through the environment, never argv (visible in ps).
      env: { PGPASSWORD: password },
    });
  }

  async superSql(sql: string, opts: { database?: string } = {}): Promise<string> {
    const args = ["-h", this.socketDir, "-p", String(this.port), "-U", SUPERUSER];
    const r = await this.#psql(sql, {
      args: [...args, "-d", opts.database ?? "postgres"],
      env: {},
    });
    if (r.code !== 0) throw new Error(`Superuser SQL failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async #psql(
    sql: string,
    o: { args: string[]; env: Record<string, string> },
  ): Promise<PsqlResult> {
    const child = new Deno.Command(`${this.clientDir}/psql`, {
      args: ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", ...o.args, "-f", "-"],
      // A clean environment: no PGHOST/PGUSER/... of the developer's shell leaks in.
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", PGCONNECT_TIMEOUT: "10", LC_ALL: "C.UTF-8", ...o.env },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(sql));
      await writer.close();
    } catch {
      // psql exited before reading (e.g. login failed); its exit status tells why
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  }

  readLog(): Promise<string> {
    return Deno.readTextFile(this.logFile);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    try {
      if (this.#running) {
        await this.#run("pg_ctl", ["-D", this.#dataDir, "-m", "immediate", "-w", "stop"]);
        this.#running = false;
      }
    } finally {
      await Deno.remove(this.dir, { recursive: true });
    }
  }
}
