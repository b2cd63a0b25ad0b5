import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { renderRows, scheduleRows } from "./listing.ts";
import { schedule, scheduled } from "./fixtures_test_util.ts";
import { VERIFIED_ANNOTATION } from "./names.ts";

Deno.test("backups list: rows newest first with the rule that keeps each", () => {
  const s = schedule({ retention: { keepLast: 1, dryRun: false } });
  const old = scheduled("2026-01-09T10:00:00Z", "Completed", { extra: { size: "1.0 KiB" } });
  old.metadata.annotations = { ...old.metadata.annotations, [VERIFIED_ANNOTATION]: "Failed" };
  const rows = scheduleRows(s, [
    old,
    scheduled("2026-01-09T11:00:00Z", "Completed", { extra: { size: "1.1 KiB" } }),
    scheduled("2026-01-09T12:00:00Z", "Failed"),
  ], Date.parse("2026-01-10T00:00:00Z"));
  assertEquals(rows.map((r) => [r.name, r.state, r.verified, r.keptBy]), [
    ["nightly-20260109-1200", "Failed", null, null],
    ["nightly-20260109-1100", "Completed", null, ["last"]],
    ["nightly-20260109-1000", "Completed", false, []],
  ]);
  const text = renderRows(rows).split("\n");
  assertEquals(
    text[0],
    "SCHEDULE  NAME                   TIME                      SIZE     STATE      VERIFIED  KEPT BY",
  );
  assertEquals(text[3]?.endsWith("(expires)"), true);
  assert(/\bno\s+\(expires\)$/.test(text[3]!), text[3]);
});
