import { assert, assertEquals } from "../tests/helpers/assert.ts";
import { compareCounts, countsDigest, isTableCounts, summarizeCounts } from "./table_counts.ts";

const list = [
  { schema: "public", table: "orders", rows: 3 },
  { schema: "app", table: "a.b", rows: 0 },
  { schema: "public", table: 'we"ird', rows: 12 },
];

Deno.test("table counts", async (t) => {
  await t.step("the summary: tables, rows, a digest independent of order", () => {
    const s = summarizeCounts(list);
    assertEquals([s.tables, s.rows], [3, 15]);
    assertEquals(s.digest, countsDigest([...list].reverse()));
    assert(/^[0-9a-f]{16}$/.test(s.digest));
    assertEquals(s.perTable.map((x) => x.table), ["a.b", "orders", 'we"ird']);
    assert(isTableCounts(s));
    assert(!isTableCounts({ ...s, rows: "15" }));
  });
  await t.step("equal counts pass", () => {
    assertEquals(compareCounts(summarizeCounts(list), [...list].reverse()), { ok: true });
    assertEquals(compareCounts(summarizeCounts([]), []), { ok: true });
  });
  await t.step("a missing table, an extra one, a different count are named", () => {
    const v = compareCounts(summarizeCounts(list), [
      { schema: "public", table: "orders", rows: 2 },
      { schema: "app", table: "a.b", rows: 0 },
      { schema: "public", table: "new", rows: 1 },
    ]);
    assert(!v.ok);
    assertEquals(
      v.message,
      "The restore holds 3 tables and 3 rows, the backup recorded 3 tables and 15 rows: " +
        '"public"."orders" has 2 rows, not 3; "public"."we\\"ird" is missing; "public"."new" is extra',
    );
  });
  await t.step("the same totals with rows moved between tables still differ", () => {
    const moved = [{ ...list[0]!, rows: 2 }, { ...list[1]!, rows: 1 }, list[2]!];
    assert(!compareCounts(summarizeCounts(list), moved).ok);
  });
  await t.step("a long list of differences is cut", () => {
    const many = Array.from({ length: 9 }, (_, i) => ({ schema: "s", table: `t${i}`, rows: i }));
    const v = compareCounts(summarizeCounts(many), []);
    assert(!v.ok && v.message.endsWith("; and 4 more"), JSON.stringify(v));
  });
});
