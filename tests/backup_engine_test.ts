/**
 * The backup and restore engines against a real PostgreSQL and real stores (local, memory, and
 * MinIO when it is installed): round trips, failure injection, bounded memory.
 */
import { type PgServer, startPostgres } from "./helpers/postgres.ts";
import { clientToolDirs } from "./helpers/pg_install.ts";
import { MemoryStore } from "../storage/memory.ts";
import { LocalStore } from "../storage/local.ts";
import { type ObjectStore, StorageError } from "../storage/store.ts";
import type { PgConnection } from "../backup/dump_command.ts";
import { BackupError, RestoreError } from "../backup/errors.ts";
import { type BackupOptions, type BackupProgress, runBackup } from "../backup/pipeline.ts";
import { type RestoreProgress, runRestore } from "../backup/restore.ts";
import { manifestKey } from "../backup/manifest.ts";
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";

const FIXTURE = `
CREATE SCHEMA shop;
CREATE SEQUENCE shop.invoice_no START 1000 INCREMENT 7;
CREATE TABLE shop.customers (id bigserial PRIMARY KEY, name text NOT NULL, city text,
  created timestamptz NOT NULL DEFAULT '2026-01-01T00:00:00Z');
CREATE TABLE shop.orders (id bigserial PRIMARY KEY,
  customer_id bigint REFERENCES shop.customers(id), invoice bigint NOT NULL
  DEFAULT nextval('shop.invoice_no'), amount numeric(12,2), note text, tags text[], doc jsonb);
CREATE TABLE public.events (id int GENERATED ALWAYS AS IDENTITY, payload bytea, at date);
CREATE INDEX orders_customer ON shop.orders(customer_id);
INSERT INTO shop.customers (name, city) VALUES
  ('Zoë Ångström', 'Zürich'), ('Łukasz Żółć', 'Kraków'), ('山田 太郎', '東京'),
  ('Renée "quote" O''Brien', E'tab\\there'), ('emoji 🐘', NULL);
INSERT INTO shop.customers (name, city)
  SELECT 'customer ' || i, 'city ' || (i % 17) FROM generate_series(1, 2000) i;
INSERT INTO shop.orders (customer_id, amount, note, tags, doc)
  SELECT 1 + i % 2005, (i * 3.17)::numeric(12,2), md5(i::text) || ' ünïcødé',
    ARRAY['a' || i, 'ß'], jsonb_build_object('i', i, 'k', 'välue')
  FROM generate_series(1, 20000) i;
INSERT INTO public.events (payload, at)
  SELECT decode(md5(i::text), 'hex'), date '2026-01-01' + i FROM generate_series(1, 500) i;
SELECT setval('shop.invoice_no', 99999);
CREATE VIEW shop.big_spenders AS
  SELECT c.name, sum(o.amount) AS total FROM shop.customers c JOIN shop.orders o
  ON o.customer_id = c.id GROUP BY c.name HAVING sum(o.amount) > 1000;
COMMENT ON TABLE shop.orders IS 'Bestellungen — commandes';
`;

/** Row count and checksum of every table, sequence values and the view's checksum. */
const FINGERPRINT = `
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
  SELECT format('%s.%s rows=%s md5=%s', n.nspname, c.relname,
    (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I',
      n.nspname, c.relname), false, true, '')))[1]::text,
    (xpath('/row/m/text()', query_to_xml(format(
      'SELECT md5(coalesce(string_agg(t::text, %L ORDER BY t::text), %L)) AS m FROM %I.%I t',
      ',', '', n.nspname, c.relname), false, true, '')))[1]::text) AS line
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'v') AND n.nspname IN ('shop', 'public')
  UNION ALL
  SELECT format('seq %s.%s last=%s', schemaname, sequencename, last_value)
  FROM pg_sequences WHERE schemaname IN ('shop', 'public')
) x;`;

/** The test servers' client tools (outside the engine's default search path). */
const TOOLS = { toolDirs: clientToolDirs() };

function conn(pg: PgServer, database: string, password = pg.admin.password): PgConnection {
  return { host: pg.host, port: pg.port, user: pg.admin.user, password, database };
}

async function sql(pg: PgServer, query: string, database = "postgres"): Promise<string> {
  const r = await pg.psql(query, { database });
  if (r.code !== 0) throw new Error(`SQL failed: ${r.stderr}`);
  return r.stdout.trim();
}

async function createSource(pg: PgServer, name: string): Promise<string> {
  await sql(pg, `CREATE DATABASE ${name}`);
  await sql(pg, FIXTURE, name);
  return await sql(pg, FINGERPRINT, name);
}

async function keys(store: ObjectStore, prefix = ""): Promise<string[]> {
  return (await store.list(prefix)).map((o) => o.key);
}

/** pg_dump processes that are children of this test process. */
async function pgDumpChildren(): Promise<number[]> {
  const out: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      if (ppid === Deno.pid && cmd.includes("pg_dump")) out.push(Number(e.name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** SIGKILLs the running pg_dump children; never throws. */
async function killPgDump(): Promise<void> {
  for (const pid of await pgDumpChildren().catch(() => [])) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
}

/** A store whose put reads slowly, so a test can act while the backup is mid-stream. */
/**
 * Run options that report progress at every step and abort the run (an Error with `reason`) at
 * the first report `when` accepts: a shutdown at a chosen point of the stream.
 */
function abortWhen<P>(when: (p: P) => boolean, reason = "shutdown") {
  const ctl = new AbortController();
  return {
    signal: ctl.signal,
    progressIntervalMs: 0,
    onProgress: (p: P) => {
      if (when(p)) ctl.abort(new Error(reason));
    },
  };
}

function slowStore(inner: ObjectStore, delayMs: number): ObjectStore {
  return wrapPut(inner, (body) =>
    body.pipeThrough(
      new TransformStream({
        async transform(chunk, c) {
          await new Promise((r) => setTimeout(r, delayMs));
          c.enqueue(chunk);
        },
      }),
    ));
}

/** A store whose upload fails after `bytes` bytes, like a server going away mid-upload. */
function failingStore(inner: ObjectStore, bytes: number): ObjectStore {
  let seen = 0;
  return wrapPut(inner, (body) =>
    body.pipeThrough(
      new TransformStream({
        transform(chunk, c) {
          seen += chunk.byteLength;
          if (seen > bytes) throw new StorageError("Unreachable", "Connection reset by peer");
          c.enqueue(chunk);
        },
      }),
    ));
}

function wrapPut(
  inner: ObjectStore,
  f: (body: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>,
): ObjectStore {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === "put") {
        return (key: string, body: ReadableStream<Uint8Array>, o?: object) =>
          target.put(key, key.endsWith(".manifest.json") ? body : f(body), o);
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

function findMinio(): string | undefined {
  const root = `${Deno.env.get("DBTETHER_CACHE") ?? `${Deno.env.get("HOME")}/.cache/dbtether`}`;
  try {
    for (const v of Deno.readDirSync(`${root}/storage-servers/minio`)) {
      const p = `${root}/storage-servers/minio/${v.name}/minio`;
      if (Deno.statSync(p).isFile) return p;
    }
  } catch {
    // not installed
  }
  return undefined;
}

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("backup and restore round trip", opts, async (t) => {
  await using pg = await startPostgres();
  const want = await createSource(pg, "src");
  const dir = await Deno.makeTempDir({ prefix: "dbtether-backup-test-" });
  const stores: [string, () => Promise<[ObjectStore, AsyncDisposable?]>][] = [
    ["memory", () => Promise.resolve([new MemoryStore({ chunkSize: 7919 })])],
    ["local", () => Promise.resolve([new LocalStore({ path: dir })])],
  ];
  if (findMinio()) {
    stores.push(["s3 (MinIO)", async () => {
      const { startMinio } = await import("./helpers/storage_servers.ts");
      const minio = await startMinio();
      await minio.createBucket("backups");
      return [minio.makeStore({ bucket: "backups" }), minio];
    }]);
  }
  let n = 0;
  try {
    for (const [name, make] of stores) {
      for (const format of ["plain", "custom"] as const) {
        await t.step(`${name}, ${format}`, async () => {
          const [store, server] = await make();
          try {
            const key = `c1/src/${format}-${n}.dump`;
            const progress: number[] = [];
            const b = await runBackup({
              ...TOOLS,
              connection: conn(pg, "src"),
              store,
              key,
              format,
              compressionLevel: 5,
              onProgress: (p) => progress.push(p.compressedBytes),
              progressIntervalMs: 0,
            });
            assertEquals(await keys(store, `c1/src/${format}-${n}`), [key, manifestKey(key)]);
            assertEquals(b.manifest.format, format);
            assertEquals(b.manifest.serverVersion, pg.version);
            assert(b.manifest.uncompressedSize > 0 && b.manifest.compressedSize > 0);
            assertEquals(progress.at(-1), b.manifest.compressedSize);
            const head = await store.head(key);
            assertEquals(head?.size, b.manifest.compressedSize);
            const target = `dst${n++}`;
            await sql(pg, `CREATE DATABASE ${target}`);
            const r = await runRestore({ store, key, ...TOOLS, connection: conn(pg, target) });
            assertEquals(r.sha256, b.manifest.sha256);
            assertEquals(await sql(pg, FINGERPRINT, target), want);
            // Sequences continue where they were, and the view works.
            assertEquals(await sql(pg, "SELECT nextval('shop.invoice_no')", target), "100006");
            assert(Number(await sql(pg, "SELECT count(*) FROM shop.big_spenders", target)) > 0);
          } finally {
            await store.close();
            await server?.[Symbol.asyncDispose]();
          }
        });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("backup failures leave no object at the key", opts, async (t) => {
  await using pg = await startPostgres();
  await createSource(pg, "src");
  // Enough data that the dump is still streaming when the test intervenes.
  await sql(
    pg,
    "CREATE TABLE bulk AS SELECT i, repeat(md5(i::text), 8) AS s FROM generate_series(1, 300000) i",
    "src",
  );

  await t.step("bad password: DumpFailed with pg_dump's error, redacted", async () => {
    const store = new MemoryStore();
    for (const serverVersion of [undefined, { major: 15, version: "15" }]) {
      const e = await assertRejects(
        () =>
          runBackup({
            ...TOOLS,
            connection: conn(pg, "src", "wrong-secret-123"),
            store,
            key: "k/a.sql.gz",
            ...(serverVersion ? { serverVersion } : {}),
          }),
        BackupError,
      );
      assertEquals(e.reason, "DumpFailed");
      assert(e.message.includes("password authentication failed"), e.message);
      assert(!e.message.includes("wrong-secret-123"));
      assertEquals(await keys(store), []);
    }
  });

  await t.step("pg_dump killed mid-stream: DumpFailed, nothing stored", async () => {
    const store = slowStore(new MemoryStore(), 5);
    let killed = false;
    const e = await assertRejects(
      () =>
        runBackup({
          ...TOOLS,
          connection: conn(pg, "src"),
          store,
          key: "k/b.sql.gz",
          progressIntervalMs: 0,
          onProgress: (p) => {
            if (killed || p.compressedBytes < 64 * 1024) return;
            killed = true;
            void killPgDump();
          },
        }),
      BackupError,
    );
    assert(killed, "the test did not get to kill pg_dump");
    assertEquals(e.reason, "DumpFailed");
    assert(e.message.includes("SIGKILL"), e.message);
    assertEquals(await keys(store), []);
  });

  await t.step("storage fails mid-upload: StorageFailed, pg_dump killed", async () => {
    const store = failingStore(new MemoryStore(), 256 * 1024);
    const e = await assertRejects(
      () => runBackup({ ...TOOLS, connection: conn(pg, "src"), store, key: "k/c.sql.gz" }),
      BackupError,
    );
    assertEquals(e.reason, "StorageFailed");
    assert(e.message.includes("Connection reset by peer"), e.message);
    assertEquals(await keys(store), []);
    assertEquals(await pgDumpChildren(), []);
  });

  await t.step("abort mid-backup: Aborted, pg_dump killed, nothing stored", async () => {
    const store = slowStore(new MemoryStore(), 5);
    const p = runBackup({
      ...TOOLS,
      connection: conn(pg, "src"),
      store,
      key: "k/d.sql.gz",
      ...abortWhen((p: BackupProgress) => p.compressedBytes > 64 * 1024, "operator shutting down"),
    });
    const e = await assertRejects(() => p, BackupError);
    assertEquals(e.reason, "Aborted");
    assert(e.message.includes("operator shutting down"), e.message);
    assertEquals(await keys(store), []);
    assertEquals(await pgDumpChildren(), []);
  });

  await t.step("only older pg_dump: ToolTooOld names the versions and dirs", async () => {
    const e = await assertRejects(
      () =>
        runBackup({
          ...TOOLS,
          connection: conn(pg, "src"),
          store: new MemoryStore(),
          key: "k/e.sql.gz",
          serverVersion: { major: 99, version: "99.1" },
          toolDirs: ["/usr/lib/postgresql/*/bin"],
        }),
      BackupError,
    );
    assertEquals(e.reason, "ToolTooOld");
    assert(e.message.includes("PostgreSQL 99.1") && e.message.includes("/usr/lib/postgresql"));
    assert(e.message.includes("major 99 or newer") && e.message.includes("--pg-tools-dir"));
  });

  await t.step("unsafe key: InvalidOptions", async () => {
    const e = await assertRejects(
      () =>
        runBackup({ ...TOOLS, connection: conn(pg, "src"), store: new MemoryStore(), key: "../x" }),
      BackupError,
    );
    assertEquals(e.reason, "InvalidOptions");
  });
});

Deno.test("restore failures commit nothing", opts, async (t) => {
  await using pg = await startPostgres();
  await createSource(pg, "src");
  const store = new MemoryStore();
  const key = "k/src.sql.gz";
  const b = await runBackup({ ...TOOLS, connection: conn(pg, "src"), store, key });
  const tables = (db: string) =>
    sql(pg, "SELECT count(*) FROM pg_tables WHERE schemaname IN ('shop','public')", db);

  await t.step("tampered object: ChecksumMismatch, target untouched", async () => {
    const data = new Uint8Array(await new Response(await store.get(key)).arrayBuffer());
    // Same gzip stream, one byte of the trailer's size changed: it still decompresses up to
    // the end, so only the checksum can catch it.
    data[data.length - 1] = data[data.length - 1]! ^ 1;
    const tampered = "k/tampered.sql.gz";
    await store.put(tampered, new Blob([data]).stream());
    const m = new TextDecoder().decode(
      new Uint8Array(await new Response(await store.get(manifestKey(key))).arrayBuffer()),
    );
    await store.put(manifestKey(tampered), new Blob([m.replace(key, tampered)]).stream());
    await sql(pg, "CREATE DATABASE t1");
    const e = await assertRejects(
      () => runRestore({ store, key: tampered, ...TOOLS, connection: conn(pg, "t1") }),
      RestoreError,
    );
    assertEquals(e.reason, "ChecksumMismatch");
    assertEquals(await tables("t1"), "0");
  });

  await t.step("SQL error in the dump: RestoreFailed with psql's error, rolled back", async () => {
    await sql(pg, "CREATE DATABASE t2");
    // The target already has one of the tables: the dump's CREATE TABLE fails half way.
    await sql(pg, "CREATE SCHEMA shop; CREATE TABLE shop.orders (x int)", "t2");
    const e = await assertRejects(
      () => runRestore({ store, key, ...TOOLS, connection: conn(pg, "t2") }),
      RestoreError,
    );
    assertEquals(e.reason, "RestoreFailed");
    assert(e.message.includes("already exists"), e.message);
    assertEquals(await tables("t2"), "1");
  });

  await t.step("no manifest: BackupNotFound", async () => {
    await store.put("k/partial.sql.gz", await store.get(key));
    const e = await assertRejects(
      () => runRestore({ store, key: "k/partial.sql.gz", ...TOOLS, connection: conn(pg, "t2") }),
      RestoreError,
    );
    assertEquals(e.reason, "BackupNotFound");
  });

  await t.step("abort mid-restore: Aborted, nothing committed", async () => {
    await sql(pg, "CREATE DATABASE t3");
    const e = await assertRejects(
      () =>
        runRestore({
          store: slowStore(store, 0),
          key,
          ...TOOLS,
          connection: conn(pg, "t3"),
          ...abortWhen((p: RestoreProgress) => p.storedBytes > 0),
        }),
      RestoreError,
    );
    assertEquals(e.reason, "Aborted");
    assertEquals(await tables("t3"), "0");
  });

  await t.step("a good restore still works after all that", async () => {
    await sql(pg, "CREATE DATABASE t4");
    const r = await runRestore({ store, key, ...TOOLS, connection: conn(pg, "t4") });
    assertEquals(r.storedBytes, b.manifest.compressedSize);
    assertEquals(await sql(pg, FINGERPRINT, "t4"), await sql(pg, FINGERPRINT, "src"));
  });
});

Deno.test("memory stays bounded while backing up a few hundred MB", opts, async () => {
  await using pg = await startPostgres();
  await sql(pg, "CREATE DATABASE big");
  // ~330 MB of plain dump: md5 text compresses about 2:1, so gzip has real work.
  await sql(
    pg,
    `CREATE TABLE t AS SELECT i, md5(i::text) || repeat(md5((i % 1000)::text), 9) AS s
     FROM generate_series(1, 1000000) i`,
    "big",
  );
  const dir = await Deno.makeTempDir({ prefix: "dbtether-backup-mem-" });
  try {
    const store = new LocalStore({ path: dir });
    const before = Deno.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 20);
    try {
      const b = await runBackup({
        ...TOOLS,
        connection: conn(pg, "big"),
        store,
        key: "big.sql.gz",
      });
      assert(b.manifest.uncompressedSize > 300e6, `dump only ${b.manifest.uncompressedSize} B`);
    } finally {
      clearInterval(timer);
    }
    const growthMb = (peak - before) / 1e6;
    console.log(`RSS growth during a ${"~330 MB"} backup: ${growthMb.toFixed(1)} MB`);
    assert(growthMb < 100, `RSS grew by ${growthMb.toFixed(1)} MB`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dbtether backup / restore commands round trip through file://", opts, async () => {
  const { backupCommand, restoreCommand } = await import("../backup/cli.ts");
  await using pg = await startPostgres();
  const want = await createSource(pg, "src");
  await sql(pg, "CREATE DATABASE copy");
  const dir = await Deno.makeTempDir({ prefix: "dbtether-cli-test-" });
  try {
    const out: string[] = [];
    const err: string[] = [];
    const dec = new TextDecoder();
    const deps = (database: string) => ({
      env: {
        PGHOST: pg.host,
        PGPORT: String(pg.port),
        PGUSER: pg.admin.user,
        PGPASSWORD: pg.admin.password,
        PGDATABASE: database,
        PATH: pg.clientDir,
      },
      stdout: {
        writeSync: (p: Uint8Array) => (out.push(dec.decode(p)), p.length),
        isTerminal: () => false,
      },
      stderr: { writeSync: (p: Uint8Array) => (err.push(dec.decode(p)), p.length) },
      signal: new AbortController().signal,
    });
    assertEquals(await backupCommand(["--to", `file://${dir}`], deps("src")), 0, err.join(""));
    const done = JSON.parse(out.at(-1)!);
    assertEquals(done.event, "completed");
    assert(/^src\/\d{8}-\d{6}\.sql\.gz$/.test(done.key), done.key);
    assertEquals(
      await restoreCommand(["--from", `file://${dir}/src`, "--latest"], deps("copy")),
      0,
      err.join(""),
    );
    assertEquals(JSON.parse(out.at(-1)!).sha256, done.sha256);
    assertEquals(await sql(pg, FINGERPRINT, "copy"), want);
    // The password never reaches the output.
    assert(!out.join("").includes(pg.admin.password) && !err.join("").includes(pg.admin.password));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "S3: failures leave no object and no incomplete multipart upload",
  ...opts,
  ignore: !findMinio(),
  fn: async (t) => {
    const { openUploads, startMinio } = await import("./helpers/storage_servers.ts");
    await using pg = await startPostgres();
    await sql(pg, "CREATE DATABASE src");
    // ~160 MB of poorly compressible dump (~90 MB stored), so uploads span several 16 MiB
    // parts and pg_dump is still running when the test kills it (the upload buffers up to
    // ~3 parts ahead of what it acknowledged).
    await sql(
      pg,
      `CREATE TABLE t AS SELECT i, md5(random()::text) || md5(random()::text) AS a,
         md5(random()::text) AS b FROM generate_series(1, 1500000) i`,
      "src",
    );
    await using minio = await startMinio();
    await minio.createBucket("backups");
    /** Neither an object under k/ nor an unfinished multipart upload is left in the bucket. */
    const assertNothingStored = async (store: ObjectStore) => {
      assertEquals(await keys(store, "k/"), []);
      assertEquals(await openUploads(minio, { bucket: "backups" }), []);
    };
    await t.step("abort after several parts", async () => {
      const store = minio.makeStore({ bucket: "backups" });
      const e = await assertRejects(
        () =>
          runBackup({
            ...TOOLS,
            connection: conn(pg, "src"),
            store,
            key: "k/abort.sql.gz",
            ...abortWhen((p: BackupProgress) => p.compressedBytes > 20e6),
          }),
        BackupError,
      );
      assertEquals(e.reason, "Aborted");
      await assertNothingStored(store);
      await store.close();
    });
    await t.step("pg_dump killed after several parts", async () => {
      const store = minio.makeStore({ bucket: "backups" });
      let pids: number[] | undefined;
      let killed = false;
      const e = await assertRejects(
        () =>
          runBackup({
            ...TOOLS,
            connection: conn(pg, "src"),
            store,
            key: "k/killed.sql.gz",
            progressIntervalMs: 0,
            onProgress: (p) => {
              // Find pg_dump early, kill it synchronously once several parts went out.
              if (!pids) {
                pids = [];
                void pgDumpChildren().then((found) => pids = found);
              }
              if (killed || p.compressedBytes < 20e6 || !pids.length) return;
              killed = true;
              for (const pid of pids) {
                try {
                  Deno.kill(pid, "SIGKILL");
                } catch {
                  // exited meanwhile: the assertions below will say so
                }
              }
            },
          }),
        BackupError,
      );
      assert(killed, "the test did not get to kill pg_dump");
      assertEquals(e.reason, "DumpFailed");
      await assertNothingStored(store);
      await store.close();
    });
    await t.step("the same store still takes a full backup", async () => {
      const store = minio.makeStore({ bucket: "backups" });
      const b = await runBackup({
        ...TOOLS,
        connection: conn(pg, "src"),
        store,
        key: "k/ok.sql.gz",
      });
      assert(b.manifest.compressedSize > 40e6, `only ${b.manifest.compressedSize} B`);
      assertEquals(await keys(store, "k/"), ["k/ok.sql.gz", "k/ok.sql.gz.manifest.json"]);
      await store.close();
    });
  },
});

/** Runs a real command-line tool on `input`; its exit code and stdout. */
async function cli(cmd: string, args: string[], input: Uint8Array) {
  const p = new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  const body = new Blob([input as BufferSource]).stream();
  const [out] = await Promise.all([p.output(), body.pipeTo(p.stdin).catch(() => {})]);
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

async function readAll(store: ObjectStore, key: string): Promise<Uint8Array> {
  return new Uint8Array(await new Response(await store.get(key)).arrayBuffer());
}

const hasZstd = await cli("zstd", ["--version"], new Uint8Array()).then(() => true, () => false);

Deno.test("zstd backups: valid zstd objects that restore to the source", opts, async (t) => {
  await using pg = await startPostgres();
  const want = await createSource(pg, "src");
  const minioBin = findMinio();
  let store: ObjectStore = new MemoryStore({ chunkSize: 7919 });
  let server: AsyncDisposable | undefined;
  if (minioBin) {
    const { startMinio } = await import("./helpers/storage_servers.ts");
    const minio = await startMinio();
    await minio.createBucket("backups");
    store = minio.makeStore({ bucket: "backups" });
    server = minio;
  }
  let n = 0;
  const restoreInto = async (
    key: string,
    o: { requireManifest?: boolean; format?: "plain" } = {},
  ) => {
    const target = `zdst${n++}`;
    await sql(pg, `CREATE DATABASE ${target}`);
    await runRestore({ ...TOOLS, store, key, connection: conn(pg, target), ...o });
    return target;
  };
  /** A backup of the source database to `key`, with the options given. */
  const backUp = (key: string, o: Omit<Partial<BackupOptions>, "key"> = {}) =>
    runBackup({ ...TOOLS, connection: conn(pg, "src"), store, key, ...o });
  try {
    for (const workers of [2, 0]) {
      await t.step(`zstd, default level, ${workers} workers`, async () => {
        const key = `c1/src/w${workers}.sql.zst`;
        const b = await backUp(key, { compression: "zstd", gzipWorkers: workers });
        assertEquals(b.manifest.compression, "zstd");
        assertEquals(b.manifest.compressionAlgorithm, "zstd");
        assertEquals(b.manifest.compressionLevel, 3);
        const bytes = await readAll(store, key);
        assertEquals([...bytes.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
        assertEquals(bytes.length, b.manifest.compressedSize);
        if (hasZstd) {
          const test = await cli("zstd", ["-t", "-q"], bytes);
          assertEquals(test.code, 0, test.stderr);
          const plain = await cli("zstd", ["-dc"], bytes);
          assertEquals(plain.stdout.length, b.manifest.uncompressedSize);
        }
        const target = await restoreInto(key);
        assertEquals(await sql(pg, FINGERPRINT, target), want);
        assertEquals(await sql(pg, "SELECT count(*) FROM shop.orders", target), "20000");
      });
    }

    await t.step("gzip unchanged: gzip object, manifest as before, restores", async () => {
      const key = "c1/src/g.sql.gz";
      const b = await backUp(key);
      assertEquals(b.manifest.compression, "gzip");
      assertEquals(b.manifest.compressionLevel, 6);
      const bytes = await readAll(store, key);
      assertEquals([...bytes.subarray(0, 2)], [0x1f, 0x8b]);
      assertEquals((await cli("gzip", ["-t"], bytes)).code, 0);
      assertEquals(await sql(pg, FINGERPRINT, await restoreInto(key)), want);
    });

    await t.step("the codec comes from the bytes, not the name", async () => {
      // A zstd dump stored under a .sql.gz name, restored without a manifest.
      const key = "c1/src/misnamed.sql.gz";
      await backUp(key, { compression: "zstd" });
      await store.delete(manifestKey(key));
      const target = await restoreInto(key, { requireManifest: false, format: "plain" });
      assertEquals(await sql(pg, FINGERPRINT, target), want);
    });

    await t.step("bytes that disagree with the manifest: refused, nothing restored", async () => {
      // A gzip backup's object replaced by zstd bytes, the manifest's size and SHA-256 made to
      // match: only the codec check can notice.
      const key = "c1/src/swapped.sql.gz";
      const b = await backUp(key);
      const zkey = "c1/src/swapped-src.sql.zst";
      const z = await backUp(zkey, { compression: "zstd" });
      const bytes = await readAll(store, zkey);
      await store.delete(manifestKey(key));
      await store.delete(key);
      await store.put(key, new Blob([bytes as BufferSource]).stream());
      const forged = { ...b.manifest, sha256: z.manifest.sha256, compressedSize: bytes.length };
      await store.put(
        manifestKey(key),
        new Blob([JSON.stringify(forged)]).stream(),
      );
      const target = `zdst${n++}`;
      await sql(pg, `CREATE DATABASE ${target}`);
      const e = await assertRejects(
        () => runRestore({ ...TOOLS, store, key, connection: conn(pg, target) }),
        RestoreError,
        "its manifest says gzip, but the object is a zstd stream",
      );
      assertEquals(e.reason, "ChecksumMismatch");
      assertEquals(
        await sql(pg, "SELECT count(*) FROM pg_tables WHERE schemaname = 'shop'", target),
        "0",
      );
    });

    await t.step("custom format with zstd: pg_dump 16+ only", async () => {
      const key = "c1/src/custom-zstd.dump";
      const run = () => backUp(key, { format: "custom", compression: "zstd" });
      if (Number(pg.version.split(".")[0]) >= 16) {
        const b = await run();
        assertEquals(b.manifest.compression, "pg_dump");
        assertEquals(b.manifest.compressionAlgorithm, "zstd");
        assertEquals(await sql(pg, FINGERPRINT, await restoreInto(key)), want);
      } else {
        const e = await assertRejects(run, BackupError, "zstd needs pg_dump 16 or newer");
        assertEquals(e.reason, "InvalidOptions");
        assertEquals(await keys(store, key), []);
      }
    });

    await t.step("a level outside the algorithm's range: InvalidOptions", async () => {
      const e = await assertRejects(
        () => backUp("c1/src/bad.sql.zst", { compression: "zstd", compressionLevel: 0 }),
        BackupError,
        "invalid zstd level 0 (use 1 to 19)",
      );
      assertEquals(e.reason, "InvalidOptions");
    });
  } finally {
    await store.close();
    await server?.[Symbol.asyncDispose]();
  }
});
