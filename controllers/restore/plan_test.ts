import { assertEquals } from "../../tests/helpers/assert.ts";
import type { Backup } from "../../crds/backup.ts";
import type { Database } from "../../crds/database.ts";
import type { Restore } from "../../crds/restore.ts";
import { latestBackup, planRelease, planRestore } from "./plan.ts";
import { readyDatabase } from "../../tests/helpers/objects.ts";

const target = readyDatabase("copy", "n");
const bk = (name: string, phase: string, completedAt?: string, db = "app"): Backup => ({
  apiVersion: "dbtether.io/v1alpha1",
  kind: "Backup",
  metadata: { name, namespace: "n" },
  spec: {
    databaseRef: { name: db },
    storageRef: { name: "s" },
    filenameTemplate: "x",
    format: "plain",
    compression: { algorithm: "gzip", level: 6 },
  },
  status: {
    phase: phase as "Completed",
    ...(completedAt ? { completedAt, path: `k/${name}.sql.gz`, storageName: "s" } : {}),
  },
});
const rst = (source: Restore["spec"]["source"], status?: Restore["status"]): Restore => ({
  apiVersion: "dbtether.io/v1alpha1",
  kind: "Restore",
  metadata: { name: "r", namespace: "n" },
  spec: { source, target: { databaseRef: { name: "copy" } }, onConflict: "fail" },
  ...(status ? { status } : {}),
});
const backups = [
  bk("old", "Completed", "2026-01-01T00:00:00Z"),
  bk("new", "Completed", "2026-01-03T00:00:00Z"),
  bk("running", "Running"),
  bk("failed", "Failed"),
  bk("other", "Completed", "2026-01-04T00:00:00Z", "other"),
];
const plan = (r: Restore, o: { here?: boolean; target?: Database | null } = {}) =>
  planRestore({
    restore: r,
    target: o.target === null ? undefined : o.target ?? target,
    backups,
    storageExists: (n) => n === "s",
    runningHere: o.here ?? false,
  });

Deno.test("planRestore", async (t) => {
  await t.step("latestFrom picks the newest Completed Backup of that Database", () => {
    assertEquals(latestBackup(backups, "app")?.metadata.name, "new");
    const a = plan(rst({ latestFrom: { databaseRef: { name: "app" } } }));
    assertEquals(a.kind === "start" && a.target.source.path, "k/new.sql.gz");
  });
  await t.step("backupRef of a running Backup waits, of a failed one fails", () => {
    assertEquals(plan(rst({ backupRef: { name: "running" } })).kind, "wait");
    const f = plan(rst({ backupRef: { name: "failed" } }));
    assertEquals(f.kind === "fail" && f.reason, "BackupFailed");
  });
  await t.step("path + storageRef", () => {
    const a = plan(rst({ path: "p/x.sql.gz", storageRef: { name: "s" } }));
    assertEquals(a.kind === "start" && a.target.databaseName, "copy_db");
    const w = plan(rst({ path: "p/x.sql.gz", storageRef: { name: "nope" } }));
    assertEquals(w.kind === "wait" && w.reason, "StorageNotFound");
  });
  await t.step("one-shot: Completed and Failed never run again", () => {
    assertEquals(plan(rst({ backupRef: { name: "new" } }, { phase: "Completed" })).kind, "none");
    assertEquals(plan(rst({ backupRef: { name: "new" } }, { phase: "Failed" })).kind, "none");
  });
  await t.step("a retry reuses the source recorded in status", () => {
    const a = plan(rst({ latestFrom: { databaseRef: { name: "app" } } }, {
      phase: "Running",
      attempts: 1,
      sourcePath: "k/old.sql.gz",
      storageName: "s",
    }));
    assertEquals(a.kind === "start" && [a.target.source.path, a.target.attempt], [
      "k/old.sql.gz",
      2,
    ]);
  });
  await t.step("bounded retries", () => {
    const a = plan(rst({ backupRef: { name: "new" } }, { phase: "Running", attempts: 3 }));
    assertEquals(a.kind === "fail" && a.reason, "RetriesExhausted");
  });
  await t.step("target missing waits", () => {
    const a = plan(rst({ backupRef: { name: "new" } }), { target: null });
    assertEquals(a.kind === "wait" && a.reason, "DatabaseNotFound");
  });
});

Deno.test("planRestore: one restore at a time per target database", async (t) => {
  const busyWith = (key: string | undefined) =>
    planRestore({
      restore: rst({ backupRef: { name: "new" } }),
      target,
      backups,
      storageExists: (n) => n === "s",
      runningHere: false,
      key: "n/r",
      targetBusy: (w) => w.clusterName === "main" && w.databaseName === "copy_db" ? key : undefined,
    });
  await t.step("another Restore into the same database: wait (TargetBusy)", () => {
    const a = busyWith("n/other");
    assertEquals(a.kind === "wait" && [a.reason, a.message], [
      "TargetBusy",
      'Waiting for Restore n/other into database "copy_db" to finish',
    ]);
  });
  await t.step("no other Restore, or this one's own entry: start", () => {
    assertEquals(busyWith(undefined).kind, "start");
    assertEquals(busyWith("n/r").kind, "start");
  });
});

Deno.test("planRelease", async (t) => {
  const cases: [string, Restore | undefined, boolean, ReturnType<typeof planRelease>][] = [
    ["a live Restore: nothing to release", rst({ backupRef: { name: "new" } }), false, undefined],
    ["gone from the cache: abort its job", undefined, true, { abort: true, cleanup: false }],
    [
      "deleted, job still running: abort, clean up after the job",
      {
        ...rst({ backupRef: { name: "new" } }),
        metadata: { name: "r", namespace: "n", deletionTimestamp: "2026-01-01T00:00:00Z" },
      },
      true,
      { abort: true, cleanup: false },
    ],
    [
      "deleted, no job here: clean up",
      {
        ...rst({ backupRef: { name: "new" } }),
        metadata: { name: "r", namespace: "n", deletionTimestamp: "2026-01-01T00:00:00Z" },
      },
      false,
      { abort: true, cleanup: true },
    ],
    [
      "Completed, no job here: clean up",
      rst({ backupRef: { name: "new" } }, { phase: "Completed" }),
      false,
      { abort: false, cleanup: true },
    ],
    [
      "Failed, job still ending: wait for it",
      rst({ backupRef: { name: "new" } }, { phase: "Failed" }),
      true,
      { abort: false, cleanup: false },
    ],
  ];
  for (const [name, restore, runningHere, want] of cases) {
    await t.step(name, () => assertEquals(planRelease({ restore, runningHere }), want));
  }
});
