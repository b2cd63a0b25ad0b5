/**
 * Table and row counts of a database, recorded with a backup (from the dump's own snapshot, so
 * they are exact) and compared with a restore of it when a schedule verifies its backups.
 * Pure: the SQL that counts is in controllers/postgres/table_counts.ts.
 */
import { createHash } from "node:crypto";

/** The rows of one ordinary table. */
export interface TableCount {
  schema: string;
  table: string;
  rows: number;
}

/** What a backup records: the summary, and the per-table list (absent when over the bound). */
export interface TableCounts {
  /** Ordinary tables (partitions included, partitioned parents and extension tables not). */
  tables: number;
  /** Rows in all of them. */
  rows: number;
  /** First 16 hex digits of the SHA-256 of the sorted per-table list ({@link countsDigest}). */
  digest: string;
  perTable: TableCount[];
}

/** The list sorted by schema and table (code-point order), as every digest sees it. */
function sorted(list: readonly TableCount[]): TableCount[] {
  const key = (t: TableCount) => JSON.stringify([t.schema, t.table]);
  return [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** A short digest of the per-table counts, independent of their order. */
export function countsDigest(list: readonly TableCount[]): string {
  const h = createHash("sha256");
  for (const t of sorted(list)) h.update(JSON.stringify([t.schema, t.table, t.rows]) + "\n");
  return h.digest("hex").slice(0, 16);
}

/** The summary and sorted list of `list`. */
export function summarizeCounts(list: readonly TableCount[]): TableCounts {
  return {
    tables: list.length,
    rows: list.reduce((n, t) => n + t.rows, 0),
    digest: countsDigest(list),
    perTable: sorted(list),
  };
}

/** How a restore's counts compare with the recorded ones. */
export type CountsVerdict =
  | { ok: true }
  | { ok: false; message: string };

/** The most differing tables a message names. */
const MAX_NAMED = 5;

/** Compares what a restore holds with what the backup recorded. */
export function compareCounts(
  recorded: TableCounts,
  restored: readonly TableCount[],
): CountsVerdict {
  const got = summarizeCounts(restored);
  if (got.tables === recorded.tables && got.digest === recorded.digest) return { ok: true };
  const want = new Map(recorded.perTable.map((t) => [JSON.stringify([t.schema, t.table]), t]));
  const have = new Map(got.perTable.map((t) => [JSON.stringify([t.schema, t.table]), t]));
  const diffs: string[] = [];
  for (const [k, t] of want) {
    const h = have.get(k);
    const name = `${JSON.stringify(t.schema)}.${JSON.stringify(t.table)}`;
    if (!h) diffs.push(`${name} is missing`);
    else if (h.rows !== t.rows) diffs.push(`${name} has ${h.rows} rows, not ${t.rows}`);
  }
  for (const [k, t] of have) {
    if (!want.has(k)) diffs.push(`${JSON.stringify(t.schema)}.${JSON.stringify(t.table)} is extra`);
  }
  const named = diffs.slice(0, MAX_NAMED).join("; ") +
    (diffs.length > MAX_NAMED ? `; and ${diffs.length - MAX_NAMED} more` : "");
  return {
    ok: false,
    message: `The restore holds ${got.tables} tables and ${got.rows} rows, the backup recorded ` +
      `${recorded.tables} tables and ${recorded.rows} rows` + (named ? `: ${named}` : ""),
  };
}

/** Whether `v` (a parsed manifest's field) is a well-formed {@link TableCounts}. */
export function isTableCounts(v: unknown): v is TableCounts {
  const c = v as Partial<TableCounts> | null;
  return !!c && typeof c === "object" && Number.isSafeInteger(c.tables) &&
    Number.isSafeInteger(c.rows) && typeof c.digest === "string" && Array.isArray(c.perTable) &&
    c.perTable.every((t) =>
      !!t && typeof t.schema === "string" && typeof t.table === "string" &&
      Number.isSafeInteger(t.rows)
    );
}
