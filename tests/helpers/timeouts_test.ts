import { assertEquals } from "./assert.ts";
import { budget, budgetReport } from "./timeouts.ts";

Deno.test("budgetReport: each measured value next to its budget and the share used", () => {
  const ready = budget("ready");
  const table = budgetReport([{ what: "pairs Ready", budget: "ready", ms: ready / 4 }]);
  assertEquals(table.split("\n"), [
    "BUDGETS",
    "| measured | value | budget | used |",
    "| --- | --- | --- | --- |",
    `| pairs Ready | ${(ready / 4000).toFixed(1)} s | ready ${ready / 1000} s | 25 % |`,
  ]);
});
