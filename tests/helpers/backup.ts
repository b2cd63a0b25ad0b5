/**
 * Shared pieces of the Backup/Restore integration tests: manifests (Database, BackupStorage
 * with its Secret, Backup, Restore), the seed database and its fingerprint, phase waits that
 * show the status on timeout, and the no-leak assertion every failure test ends with.
 * Importing this module registers no test, so each test file runs alone.
 */
import { assert } from "./assert.ts";
import type { TestEnv } from "./env.ts";
import type { StorageServer } from "./storage_servers.ts";
import { budget } from "./timeouts.ts";
import { waitFor } from "./wait.ts";

export type Obj = {
  metadata: { uid: string };
  status?: {
    phase?: string;
    message?: string;
    path?: string;
    size?: string;
    sizeBytes?: number;
    duration?: string;
    attempts?: number;
    sha256?: string;
    conditions?: { type: string; reason: string; status: string }[];
  };
};

export const SEED = `
CREATE SEQUENCE counter_seq START 100;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, city text);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
  amount numeric(10,2), note text, created timestamptz DEFAULT '2026-01-01T00:00:00Z');
CREATE TABLE "Grüße" (id int PRIMARY KEY, gruss text);
INSERT INTO customers(name, city) SELECT 'Kunde ' || g,
  CASE g % 3 WHEN 0 THEN 'Zürich' WHEN 1 THEN '東京' ELSE 'São Paulo' END
  FROM generate_series(1, 500) g;
INSERT INTO orders(customer_id, amount, note)
  SELECT 1 + g % 500, g * 1.25, repeat('ü', g % 7) FROM generate_series(1, 3000) g;
INSERT INTO "Grüße" VALUES (1, 'Grüß Gott 👋'), (2, 'こんにちは'), (3, 'Привет');
SELECT setval('counter_seq', 4242);
CREATE VIEW big_orders AS SELECT o.id, c.name FROM orders o JOIN customers c
  ON c.id = o.customer_id WHERE o.amount > 1000;
`;

const RELATIONS = ["customers", "orders", `"Grüße"`, "big_orders"];

/** Row count and an md5 of every relation's rows, plus sequence positions. */
export async function fingerprint(env: TestEnv, database: string): Promise<string> {
  const parts: string[] = [];
  for (const r of RELATIONS) {
    parts.push(
      await env.pg.superSql(
        `SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) ` +
          `FROM ${r} t`,
        { database },
      ),
    );
  }
  parts.push(
    await env.pg.superSql(
      "SELECT last_value FROM counter_seq UNION ALL SELECT last_value FROM customers_id_seq " +
        "UNION ALL SELECT last_value FROM orders_id_seq",
      { database },
    ),
  );
  return parts.map((p) => p.trim()).join("\n");
}

/** A Database (deletionPolicy Delete); `dbName` may hold any characters (JSON-quoted in YAML). */
export function databaseYaml(ns: string, name: string, dbName: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  clusterRef:
    name: test-pg
  databaseName: ${JSON.stringify(dbName)}
  deletionPolicy: Delete
`;
}

export function secretYaml(ns: string, name: string, data: Record<string, string>): string {
  // Only string entries: the AWS SDK adds a "$source" object to credentials it has used.
  const lines = Object.entries(data).filter(([, v]) => typeof v === "string").map(([k, v]) =>
    `  ${k}: ${JSON.stringify(v)}`
  ).join("\n");
  return `apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  namespace: ${ns}
type: Opaque
stringData:
${lines}
`;
}

/** The spec lines of a BackupStorage on a storage server's bucket, and its Secret if any. */
export function storageYaml(
  name: string,
  o: { server?: StorageServer; bucket?: string; localPath?: string; secretNs?: string },
): string {
  let provider: string;
  let secret = "";
  if (o.localPath) {
    provider = `  local:\n    path: ${o.localPath}\n`;
  } else {
    const loc = o.server!.location(o.bucket ?? "backups");
    const body = Object.entries(Object.values(loc)[0]!).map(([k, v]) =>
      `    ${k}: ${JSON.stringify(v)}`
    )
      .join("\n");
    provider = `  ${Object.keys(loc)[0]}:\n${body}\n`;
    if (Object.keys(o.server!.credentials).length) {
      secret = secretYaml(o.secretNs ?? "default", `${name}-keys`, o.server!.credentials) + "---\n";
      provider += `  credentialsSecretRef:\n    name: ${name}-keys\n    namespace: ${
        o.secretNs ?? "default"
      }\n`;
    }
  }
  return `${secret}apiVersion: dbtether.io/v1alpha1
kind: BackupStorage
metadata:
  name: ${name}
spec:
${provider}`;
}

export function backupYaml(
  ns: string,
  name: string,
  db: string,
  storage: string,
  extra = "",
): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Backup
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  databaseRef:
    name: ${db}
  storageRef:
    name: ${storage}
  filenameTemplate: "{{ .Timestamp }}-{{ .RunID }}.sql.gz"
${extra}`;
}

export function restoreYaml(
  ns: string,
  name: string,
  source: string,
  target: string,
  extra = "",
): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Restore
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  source:
${source}
  target:
    databaseRef:
      name: ${target}
${extra}`;
}

/** Waits for a phase; on timeout the error shows the object's status. */
export async function waitPhase(
  env: TestEnv,
  kind: string,
  name: string,
  phase: string,
  o: { namespace?: string; timeoutMs?: number } = {},
): Promise<Obj> {
  try {
    return await env.waitPhase(kind, name, phase, o) as Obj;
  } catch (e) {
    const obj = await env.getJson<Obj>(kind, name, o.namespace);
    throw new Error(`${(e as Error).message}; status: ${JSON.stringify(obj?.status)}`);
  }
}

/**
 * Backs Database `source` up to BackupStorage `storage` as Backup `b1`, then restores it into
 * Database `target` as Restore `r1`, both in `ns`; returns both once Completed.
 */
export async function backupThenRestore(
  env: TestEnv,
  o: { namespace: string; source: string; target: string; storage: string },
): Promise<{ backup: Obj; restore: Obj }> {
  const ns = o.namespace;
  await env.kube.apply(backupYaml(ns, "b1", o.source, o.storage));
  const backup = await waitPhase(env, "backup", "b1", "Completed", {
    namespace: ns,
    timeoutMs: budget("backup"),
  });
  await env.kube.apply(restoreYaml(ns, "r1", "    backupRef:\n      name: b1", o.target));
  const restore = await waitPhase(env, "restore", "r1", "Completed", {
    namespace: ns,
    timeoutMs: budget("backup"),
  });
  return { backup, restore };
}

/**
 * Asserts the admin password (and `secrets`) appear in no log line of the running program or
 * of earlier ones (`logs`: what a stopped program wrote), no Event and no status.
 */
export async function assertNoPasswordLeak(
  env: TestEnv,
  o: { logs?: string[]; secrets?: string[] } = {},
): Promise<void> {
  const secrets = [env.pg.admin.password, ...(o.secrets ?? [])];
  const logs = [env.program?.logs() ?? "", ...(o.logs ?? [])].join("\n");
  const events = await env.kube.kubectl(["get", "events", "-A", "-o", "json"]);
  const statuses: [string, string][] = [];
  for (const kind of ["backups", "restores", "backupstorages"]) {
    statuses.push([kind, (await env.kube.kubectl(["get", kind, "-A", "-o", "json"])).stdout]);
  }
  for (const [i, pw] of secrets.entries()) {
    const what = i === 0 ? "the admin password" : `secret #${i}`;
    assert(!logs.includes(pw), `${what} is in the program's logs`);
    assert(!events.stdout.includes(pw), `${what} is in an Event`);
    for (const [kind, json] of statuses) assert(!json.includes(pw), `${what} is in ${kind}`);
  }
}

/**
 * Runs `sql` in an open transaction of a superuser session on `database` and keeps it open
 * (its locks held, its catalog rows uncommitted) until `end()` commits or rolls it back.
 */
export function holdTransaction(env: TestEnv, database: string, sql: string) {
  const child = new Deno.Command(`${env.pg.clientDir}/psql`, {
    args: [
      "-X",
      "-q",
      "-h",
      env.pg.socketDir,
      "-p",
      String(env.pg.port),
      "-U",
      env.pg.superuser,
      "-d",
      database,
    ],
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", LC_ALL: "C.UTF-8" },
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const w = child.stdin.getWriter();
  const written = w.write(new TextEncoder().encode(`BEGIN; ${sql}\n`));
  return {
    written,
    async end(how: "COMMIT" | "ROLLBACK" = "COMMIT") {
      await written;
      await w.write(new TextEncoder().encode(`${how};\n`));
      await w.close();
      await child.status;
    },
  };
}

/** Holds ACCESS EXCLUSIVE on a table from a superuser session until released. */
export async function holdLock(env: TestEnv, database: string, table: string) {
  const tx = holdTransaction(env, database, `LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE;`);
  await tx.written;
  await waitFor("the lock", async () =>
    (await env.pg.superSql(
      `SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted ` +
        `AND relation = '${table}'::regclass`,
      { database },
    )).trim() === "1");
  return { release: () => tx.end() };
}

/** Waits until pg_dump of a backup is connected to `database` (blocked on the lock). */
export async function dumpConnected(env: TestEnv, database: string): Promise<void> {
  await waitFor("pg_dump to connect", async () =>
    Number(
      await env.pg.superSql(
        `SELECT count(*) FROM pg_stat_activity WHERE datname = '${database}' ` +
          `AND application_name = 'dbtether-backup'`,
      ),
    ) > 0, { timeoutMs: budget("ready") });
}

/** The names in `dir` except hidden ones (temporary files); [] when it does not exist. */
export function files(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => !n.startsWith("."));
  } catch {
    return [];
  }
}

/** Pids of the direct children of `parent` whose command name is `name` (from /proc). */
export function childPids(parent: number, name: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === parent && comm === name) out.push(Number(e.name));
  }
  return out;
}

/**
 * Waits for the program's restore tool (psql or pg_restore) to start and stops it (SIGSTOP),
 * so the restore holds still mid-way whatever the machine's speed. Returns its pid; `resume`
 * sends SIGCONT (the test started nothing else by that pid).
 */
export async function freezeRestoreTool(
  env: TestEnv,
  tool: "psql" | "pg_restore" = "psql",
): Promise<{ pid: number; resume(): void }> {
  const parent = env.program!.process.pid;
  const pid = await waitFor(`the program to start ${tool}`, () => {
    const pids = childPids(parent, tool);
    return pids.length === 1 ? pids[0] : undefined;
  }, { timeoutMs: budget("backup"), intervalMs: 20 });
  Deno.kill(pid, "SIGSTOP");
  return {
    pid,
    resume() {
      try {
        Deno.kill(pid, "SIGCONT");
      } catch { /* it exited */ }
    },
  };
}

/**
 * Writes a dump made outside the operator (a plain SQL script, gzip-compressed) and an
 * unsigned manifest for it, as an import from elsewhere would look; returns the key.
 */
export async function writeForeignDump(
  dir: string,
  key: string,
  sql: string,
  o: { sourceNamespace?: string } = {},
): Promise<string> {
  const raw = new TextEncoder().encode(sql);
  const gz = new Uint8Array(
    await new Response(new Blob([raw]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
  const sha = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", gz)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const path = `${dir}/${key}`;
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeFile(path, gz);
  const manifest = {
    manifestVersion: 1,
    key,
    format: "plain",
    compression: "gzip",
    compressionLevel: 6,
    uncompressedSize: raw.length,
    compressedSize: gz.length,
    sha256: sha,
    pgDumpVersion: "15.18",
    serverVersion: "15.18",
    database: "elsewhere",
    startedAt: "2026-01-01T00:00:00.000Z",
    completedAt: "2026-01-01T00:00:01.000Z",
    durationMs: 1000,
    ...(o.sourceNamespace
      ? {
        source: {
          namespace: o.sourceNamespace,
          backup: "forged",
          backupUid: crypto.randomUUID(),
          databaseResource: "forged",
          cluster: "test-pg",
        },
      }
      : {}),
  };
  await Deno.writeTextFile(`${path}.manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
  return key;
}

/** Databases and roles a restore may leave behind (scratch, replaced, login, borrow). */
export async function restoreLeftovers(env: TestEnv): Promise<string[]> {
  const out = await env.pg.superSql(
    "SELECT 'database ' || datname FROM pg_database " +
      "WHERE shobj_description(oid, 'pg_database') LIKE 'dbtether:Restore/%' " +
      "OR datname ~ '_(restore|replaced)_[0-9a-f]{8}$' " +
      "UNION ALL SELECT 'role ' || rolname FROM pg_roles " +
      "WHERE rolname LIKE 'dbtether\\_restore\\_%' OR rolname LIKE 'dbtether\\_borrow\\_%' " +
      "ORDER BY 1",
  );
  return out.split("\n").filter(Boolean);
}

/**
 * A psql session of `user` on `database` that stays connected (in `SELECT pg_sleep(600)`) until
 * it is ended; `status` settles when psql exits; `kill` ends the process the test started.
 */
export async function openSession(
  env: TestEnv,
  o: { user: string; password: string; database: string },
): Promise<{ status: Promise<Deno.CommandStatus>; kill(): Promise<void> }> {
  const child = new Deno.Command(`${env.pg.clientDir}/psql`, {
    args: ["-X", "-h", env.pg.host, "-p", String(env.pg.port), "-U", o.user],
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", PGPASSWORD: o.password, PGDATABASE: o.database },
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode("SELECT pg_sleep(600);\n"));
  await waitFor(`a session of ${o.user}`, async () =>
    Number(
      await env.pg.superSql(
        `SELECT count(*) FROM pg_stat_activity WHERE usename = '${o.user.replaceAll("'", "''")}'`,
      ),
    ) > 0);
  return {
    status: child.status,
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status.catch(() => {});
      await w.close().catch(() => {});
    },
  };
}
