/**
 * Exact table and row counts: at backup time in the snapshot pg_dump dumps, and in a restored
 * scratch database when a schedule verifies a backup.
 *
 * The backup side holds its own connection (not a pool slot: the pool's sessions carry an
 * idle-in-transaction limit, and this transaction sits idle while pg_dump runs) in a REPEATABLE
 * READ READ ONLY transaction, exports its snapshot for `pg_dump --snapshot`, counts in it, and
 * ends the transaction only when the dump is over.
 *
 * Counting is one statement: each table's count runs through `query_to_xml` on a query built by
 * the server with `format('%I.%I')`, so every schema and table name is quoted by PostgreSQL
 * itself, whatever it contains. The work is bounded: at most {@link MAX_COUNTED_TABLES}
 * tables, and a statement timeout.
 */
import postgres from "postgres";
import { errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { nullLogger } from "../../lib/log.ts";
import { type ServerConfig, type Sql, tlsOptions } from "./pool.ts";

/** Over this many tables nothing is counted (the backup records no counts). */
export const MAX_COUNTED_TABLES = 10_000;
/** How long the count may take, by default. */
export const COUNT_TIMEOUT_MS = 30 * 60_000;

/** The rows of one table (backup/table_counts.ts summarizes and compares them). */
export interface TableRows {
  schema: string;
  table: string;
  rows: number;
}

interface Row {
  schema: string;
  table: string;
  rows: string | null;
}

/**
 * Counts the rows of every ordinary table of the current database that pg_dump dumps with data:
 * not temporary, not an extension's member (`CREATE EXTENSION` recreates those), not in a
 * system schema. Partitions are counted one by one (ONLY), their parents hold no rows.
 * Undefined when there are more than {@link MAX_COUNTED_TABLES}.
 */
export async function countTables(sql: Sql): Promise<TableRows[] | undefined> {
  return toCounts(await countQuery(sql));
}

/** The counting statement, still cancellable (postgres.js sends a CancelRequest). */
function countQuery(sql: Sql): Promise<Row[]> & { cancel(): unknown } {
  return sql<Row[]>`
    WITH t AS (
      SELECT n.nspname AS schema, c.relname AS "table"
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND c.relpersistence <> 't'
        AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype = 'e')
      LIMIT ${MAX_COUNTED_TABLES + 1})
    SELECT schema, "table",
      CASE WHEN (SELECT count(*) FROM t) > ${MAX_COUNTED_TABLES} THEN NULL ELSE
        (xpath('/row/n/text()', query_to_xml(
          format('SELECT count(*) AS n FROM ONLY %I.%I', schema, "table"),
          false, true, '')))[1]::text
      END AS rows
    FROM t`;
}

function toCounts(rows: Row[]): TableRows[] | undefined {
  if (rows.some((r) => r.rows === null)) return undefined;
  return rows.map((r) => ({ schema: r.schema, table: r.table, rows: Number(r.rows) }));
}

function sessionLimits(countTimeoutMs: number): Record<string, string> {
  return {
    // This session sits idle in its transaction while pg_dump runs.
    idle_in_transaction_session_timeout: "0",
    statement_timeout: String(countTimeoutMs),
  };
}

/** An exported snapshot and its session; disposing it ends the transaction and the session. */
export interface OpenSnapshot extends AsyncDisposable {
  /** What `pg_export_snapshot()` returned, for `pg_dump --snapshot`. */
  id: string;
  /** The counts in the snapshot; undefined when counting failed or was over its bound. */
  counts: () => Promise<TableRows[] | undefined>;
}

/**
 * Opens a session on `database`, starts a REPEATABLE READ READ ONLY transaction, exports its
 * snapshot and starts counting in it. The transaction stays open until disposal.
 */
export async function openDumpSnapshot(
  server: ServerConfig,
  o: { database: string; logger?: Logger; countTimeoutMs?: number },
): Promise<OpenSnapshot> {
  const log = o.logger ?? nullLogger;
  const sql = postgres({
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database: o.database,
    ssl: tlsOptions(server.sslMode ?? "require", {
      ...(server.ca === undefined ? {} : { ca: server.ca }),
      host: server.host,
    }),
    max: 1,
    connect_timeout: server.connectTimeoutSeconds ?? 10,
    debug: false,
    onnotice: () => {},
    prepare: false,
    fetch_types: false,
    connection: {
      application_name: "dbtether-backup-snapshot",
      search_path: "pg_catalog, pg_temp",
      ...sessionLimits(o.countTimeoutMs ?? COUNT_TIMEOUT_MS),
    },
  }) as unknown as Sql;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let exported!: (id: string) => void;
  let failed!: (e: unknown) => void;
  const id = new Promise<string>((res, rej) => ((exported = res), (failed = rej)));
  let counted: Promise<TableRows[] | undefined> | undefined;
  let counting: { cancel(): unknown } | undefined;
  const tx = sql.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY", async (t) => {
    const [row] = await t<{ id: string }[]>`SELECT pg_export_snapshot() AS id`;
    exported(row!.id);
    const q = countQuery(t as unknown as Sql);
    counting = q;
    counted = q.then(toCounts).catch((e: unknown) => {
      log.warn("Cannot count the tables in the backup's snapshot", { error: errorMessage(e) });
      return undefined;
    });
    counted.finally(() => (counting = undefined));
    await counted;
    await released;
  }).catch((e: unknown) => failed(e));
  try {
    const snapshot = await id;
    return {
      id: snapshot,
      counts: () => counted ?? Promise.resolve(undefined),
      async [Symbol.asyncDispose]() {
        release();
        // A count still running (the dump failed or was stopped; a table is locked) is
        // cancelled on the server: the transaction must not wait for it to end.
        // (Only while it runs: postgres.js would cancel whatever the session ran next.)
        if (counting) await Promise.resolve(counting.cancel()).catch(() => {});
        await tx;
        await sql.end({ timeout: 5 }).catch(() => {});
      },
    };
  } catch (e) {
    await sql.end({ timeout: 5 }).catch(() => {});
    throw e;
  }
}
