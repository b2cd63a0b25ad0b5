import { assertEquals } from "../tests/helpers/assert.ts";
import { type DemoObject, isDone, pendingOf, progressLine } from "./demo_status.ts";

const obj = (kind: string, name: string, status?: DemoObject["status"], ns?: string) => ({
  kind,
  metadata: { name, ...(ns ? { namespace: ns } : {}) },
  ...(status ? { status } : {}),
});

Deno.test("what the demo waits for, per kind", async (t) => {
  const table: [string, DemoObject, boolean][] = [
    ["a DBCluster is done when Connected", obj("DBCluster", "c", { phase: "Connected" }), true],
    ["a Database is done when Ready", obj("Database", "d", { phase: "Ready" }, "default"), true],
    ["a Backup is not done when Running", obj("Backup", "b", { phase: "Running" }, "ns"), false],
    ["a Backup is done when Completed", obj("Backup", "b", { phase: "Completed" }, "ns"), true],
    ["a Restore is done when Completed", obj("Restore", "r", { phase: "Completed" }, "ns"), true],
    ["no status is not done", obj("DatabaseUser", "u", undefined, "ns"), false],
  ];
  for (const [name, o, want] of table) await t.step(name, () => assertEquals(isDone(o), want));
});

Deno.test("pending resources carry the Ready condition's reason, else the phase", () => {
  const items = [
    obj("DBCluster", "c", { phase: "Connected" }),
    obj("DatabaseUser", "u", {
      phase: "Pending",
      conditions: [{
        type: "Ready",
        status: "False",
        reason: "DatabaseNotReady",
        message: 'Database "d" is not Ready yet',
      }],
    }, "default"),
    obj("Backup", "b", { phase: "Running", message: "Dumping" }, "default"),
    obj("Database", "d", undefined, "default"),
  ];
  assertEquals(pendingOf(items), [
    { id: "backup/default/b", reason: "Running", message: "Dumping" },
    {
      id: "database/default/d",
      reason: "NoStatus",
      message: "the controller has not reported on it yet",
    },
    {
      id: "databaseuser/default/u",
      reason: "DatabaseNotReady",
      message: 'Database "d" is not Ready yet',
    },
  ]);
  assertEquals(
    progressLine(items, 2),
    "1/4 ready; waiting for backup/default/b (Running), database/default/d (NoStatus) and 1 more",
  );
  assertEquals(progressLine([items[0]!]), "All 1 resources are ready.");
});
