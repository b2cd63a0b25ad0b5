import { assert, assertEquals } from "../../backup/test_assert.ts";
import type { Backup } from "../../crds/backup.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import type { Database } from "../../crds/database.ts";
import { type BackupAction, parseGoDuration, planBackup, runId } from "./plan.ts";

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);
const ready = [{
  type: "Ready",
  status: "True" as const,
  reason: "Ready",
  message: "",
  lastTransitionTime: "2026-01-01T00:00:00Z",
}];

function backup(status: Backup["status"] = undefined, spec: Partial<Backup["spec"]> = {}): Backup {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Backup",
    metadata: {
      name: "b1",
      namespace: "team",
      uid: "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
      creationTimestamp: "2026-01-02T03:04:05Z",
      generation: 1,
    },
    spec: {
      databaseRef: { name: "app" },
      storageRef: { name: "s" },
      filenameTemplate: "{{ .Timestamp }}-{{ .RunID }}.sql.gz",
      format: "plain",
      compression: { level: 6 },
      ...spec,
    },
    ...(status ? { status } : {}),
  };
}

const db: Database = {
  apiVersion: "dbtether.io/v1alpha1",
  kind: "Database",
  metadata: { name: "app", namespace: "team" },
  spec: { clusterRef: { name: "main" }, deletionPolicy: "Retain", revokePublicConnect: true },
  status: { phase: "Ready", databaseName: "app_db", conditions: ready },
};
const storage: BackupStorage = {
  apiVersion: "dbtether.io/v1alpha1",
  kind: "BackupStorage",
  metadata: { name: "s" },
  spec: { local: { path: "/x" }, pathTemplate: "{{ .ClusterName }}/{{ .DatabaseName }}" },
  status: { phase: "Ready", conditions: ready },
};

function plan(
  b: Backup,
  o: { db?: Database | null; storage?: BackupStorage | null; here?: boolean } = {},
) {
  return planBackup({
    backup: b,
    database: o.db === null ? undefined : o.db ?? db,
    storage: o.storage === null ? undefined : o.storage ?? storage,
    runningHere: o.here ?? false,
    now: NOW,
  });
}

Deno.test("planBackup", async (t) => {
  const key = "main/app_db/20260102-030405-0a1b2c3d.sql.gz";
  const cases: [string, BackupAction, BackupAction["kind"], Partial<Record<string, unknown>>?][] = [
    ["new backup starts with a deterministic key", plan(backup()), "start", {
      key,
      attempt: 1,
      retry: false,
    }],
    [
      "running here: nothing",
      plan(backup({ phase: "Running", attempts: 1 }), { here: true }),
      "none",
    ],
    [
      "running elsewhere (crash): retried with the recorded key",
      plan(
        backup({ phase: "Running", attempts: 1, path: "kept/key.sql.gz" }),
      ),
      "start",
      { key: "kept/key.sql.gz", attempt: 2, retry: true },
    ],
    ["interrupted too often: failed", plan(backup({ phase: "Running", attempts: 3 })), "fail"],
    ["completed is never re-run", plan(backup({ phase: "Completed", attempts: 1 })), "none"],
    ["failed is never re-run", plan(backup({ phase: "Failed", attempts: 1 })), "none"],
    ["database missing: wait", plan(backup(), { db: null }), "wait"],
    [
      "database not ready: wait",
      plan(backup(), { db: { ...db, status: { phase: "Pending" } } }),
      "wait",
    ],
    ["storage missing: wait", plan(backup(), { storage: null }), "wait"],
    [
      "storage not ready: wait",
      plan(backup(), { storage: { ...storage, status: { phase: "Failed" } } }),
      "wait",
    ],
  ];
  for (const [name, got, kind, target] of cases) {
    await t.step(name, () => {
      assertEquals(got.kind, kind);
      if (target && got.kind === "start") {
        for (const [k, v] of Object.entries(target)) {
          assertEquals((got.target as unknown as Record<string, unknown>)[k], v);
        }
      }
    });
  }
  await t.step("after a storage failure: retried after a backoff doubling per attempt", () => {
    const failed = (attempts: number, startedAgoMs: number) =>
      backup({
        phase: "Pending",
        attempts,
        path: key,
        startedAt: new Date(NOW - startedAgoMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
        conditions: [{ ...ready[0]!, status: "False", reason: "StorageFailed" }],
      });
    assertEquals(plan(failed(1, 4_000)), { kind: "requeue", afterMs: 6_000 });
    assertEquals(plan(failed(2, 4_000)), { kind: "requeue", afterMs: 16_000 });
    const due = plan(failed(1, 10_000));
    assertEquals(due.kind === "start" && [due.target.attempt, due.target.retry], [2, true]);
    assertEquals(plan(failed(3, 0)).kind, "fail");
  });
  await t.step("the key is the same on every attempt", () => {
    const a = plan(backup());
    const b = plan(backup({ phase: "Pending", attempts: 1 }));
    assertEquals(a.kind === "start" && a.target.key, b.kind === "start" && b.target.key);
  });
  await t.step("ttl: delete when due, requeue before", () => {
    const done = (completedAt: string) =>
      plan(backup({ phase: "Completed", completedAt }, { ttlAfterCompletion: "1h" }));
    assertEquals(done("2026-01-02T02:04:05Z").kind, "delete");
    const r = done("2026-01-02T03:04:05Z");
    assertEquals(r.kind === "requeue" && r.afterMs, 3_600_000);
  });
  await t.step("reasons are specific", () => {
    const a = plan(backup(), { db: null });
    assertEquals(a.kind === "wait" && a.reason, "DatabaseNotFound");
    const f = plan(backup({ phase: "Running", attempts: 3 }));
    assertEquals(f.kind === "fail" && f.reason, "RetriesExhausted");
  });
});

Deno.test("runId is the uid's first 8 hex digits", () => {
  assertEquals(runId(backup()), "0a1b2c3d");
});

Deno.test("parseGoDuration", () => {
  assertEquals(parseGoDuration("1h30m"), 5_400_000);
  assertEquals(parseGoDuration("90s"), 90_000);
  assertEquals(parseGoDuration("1.5h"), 5_400_000);
  let msg = "";
  try {
    parseGoDuration("1d");
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(/Invalid duration "1d"/.test(msg), msg);
});
