import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { Backup } from "../../crds/backup.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import type { Database } from "../../crds/database.ts";
import {
  type BackupAction,
  planBackup,
  runId,
  storageRetry,
  type StorageRetryInput,
} from "./plan.ts";
import { kubeTime } from "../../lib/time.ts";
import { backupTemplate, READY, readyDatabase } from "../../tests/helpers/objects.ts";

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);

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
    spec: backupTemplate({ filenameTemplate: "{{ .Timestamp }}-{{ .RunID }}.sql.gz", ...spec }),
    ...(status ? { status } : {}),
  };
}

const db = readyDatabase("app", "team");
const storage: BackupStorage = {
  apiVersion: "dbtether.io/v1alpha1",
  kind: "BackupStorage",
  metadata: { name: "s" },
  spec: { local: { path: "/x" }, pathTemplate: "{{ .ClusterName }}/{{ .DatabaseName }}" },
  status: { phase: "Ready", conditions: READY },
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
      "running elsewhere (crash): the interruption is recorded first",
      plan(backup({ phase: "Running", attempts: 1, path: "kept/key.sql.gz" })),
      "interrupted",
    ],
    [
      "interrupted and recorded: retried with the recorded key",
      plan(backup({ ...interrupted(1), attempts: 1, path: "kept/key.sql.gz" })),
      "start",
      { key: "kept/key.sql.gz", attempt: 2, retry: true },
    ],
    [
      "interrupted as often as --backup-max-attempts: failed",
      plan(backup({ ...interrupted(3), attempts: 3 })),
      "fail",
    ],
    [
      "storage failures are not interruptions: still retried after many runs",
      plan(backup({ ...storageFailed(NOW - 1), attempts: 9, interruptions: 2 })),
      "start",
      { attempt: 10, retry: true },
    ],
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
  await t.step("after a storage failure: waits until status.nextRetryAt", () => {
    assertEquals(plan(backup({ ...storageFailed(NOW + 6_000), attempts: 1 })), {
      kind: "requeue",
      afterMs: 6_000,
    });
    const due = plan(backup({ ...storageFailed(NOW), attempts: 1, path: key }));
    assertEquals(due.kind === "start" && [due.target.attempt, due.target.retry], [2, true]);
  });
  await t.step("a stalled storage is retried like a failing one", () => {
    const stalled = (at: number): Backup["status"] => ({
      ...storageFailed(at),
      conditions: [{ ...READY[0]!, status: "False", reason: "StorageStalled" }],
    });
    assertEquals(plan(backup({ ...stalled(NOW + 5_000), attempts: 1 })), {
      kind: "requeue",
      afterMs: 5_000,
    });
    const notReady = { ...storage, status: { phase: "Failed" as const } };
    assertEquals(
      plan(backup({ ...stalled(NOW), attempts: 1 }), { storage: notReady }).kind,
      "start",
    );
  });
  await t.step("a Failed Backup removes its leftovers once, never while its run is here", () => {
    const failed = { phase: "Failed" as const, attempts: 3, path: key };
    assertEquals(plan(backup(failed)), { kind: "removeLeftovers", key });
    assertEquals(plan(backup(failed), { here: true }).kind, "none");
    assertEquals(plan(backup(failed), { storage: null }).kind, "none", "no storage to clean");
    const done = { ...failed, leftoversRemovedAt: kubeTime(NOW) };
    assertEquals(plan(backup(done)).kind, "none");
    assertEquals(plan(backup({ phase: "Failed", attempts: 0 })).kind, "none", "never wrote");
  });
  await t.step("retrying storage failures does not wait for the storage's next probe", () => {
    const notReady = { ...storage, status: { phase: "Failed" as const } };
    const due = plan(backup({ ...storageFailed(NOW), attempts: 2 }), { storage: notReady });
    assertEquals(due.kind, "start");
    assertEquals(plan(backup(), { storage: notReady }).kind, "wait");
  });
  await t.step("without filenameTemplate the key is unique per Backup, by format", () => {
    const untemplated = (b: Backup) => {
      delete b.spec.filenameTemplate;
      return b;
    };
    const plain = plan(untemplated(backup()));
    assertEquals(plain.kind === "start" && plain.target.key, key);
    const custom = plan(untemplated(backup(undefined, { format: "custom" })));
    assertEquals(
      custom.kind === "start" && custom.target.key,
      "main/app_db/20260102-030405-0a1b2c3d.dump",
    );
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
    const f = plan(backup({ ...interrupted(3), attempts: 3 }));
    assertEquals(f.kind === "fail" && f.reason, "RetriesExhausted");
    assert(f.kind === "fail" && /interrupted 3 times/.test(f.message));
  });
});

function interrupted(interruptions: number): Backup["status"] {
  return {
    phase: "Pending",
    interruptions,
    conditions: [{ ...READY[0]!, status: "False", reason: "Interrupted" }],
  };
}

function storageFailed(nextRetryAt: number): Backup["status"] {
  return {
    phase: "Pending",
    nextRetryAt: kubeTime(nextRetryAt),
    conditions: [{ ...READY[0]!, status: "False", reason: "StorageFailed" }],
  };
}

Deno.test("storageRetry: backoff over a window, not a count", async (t) => {
  const s = 1000;
  const at = (ms: number) => new Date(ms).toISOString();
  const input = (o: Partial<StorageRetryInput> & { since?: number; failures?: number }) => ({
    status: o.since === undefined
      ? undefined
      : { storageFailingSince: at(o.since), storageFailures: o.failures ?? 1 },
    failedAt: o.failedAt ?? NOW,
    startedAt: o.startedAt ?? NOW - 2 * s,
    retryForMs: o.retryForMs ?? 600 * s,
  });
  const cases: [string, StorageRetryInput, ReturnType<typeof storageRetry>][] = [
    [
      "the first failure starts the outage and retries after 5 s",
      input({}),
      { retry: true, since: NOW, failures: 1, nextRetryAt: NOW + 5 * s },
    ],
    [
      "the delay doubles per failure in a row",
      input({ since: NOW - 30 * s, failures: 3 }),
      { retry: true, since: NOW - 30 * s, failures: 4, nextRetryAt: NOW + 40 * s },
    ],
    [
      "and stays at 60 s",
      input({ since: NOW - 300 * s, failures: 9 }),
      { retry: true, since: NOW - 300 * s, failures: 10, nextRetryAt: NOW + 60 * s },
    ],
    [
      "the last retry is at the window's end",
      input({ since: NOW - 590 * s, failures: 12 }),
      { retry: true, since: NOW - 590 * s, failures: 13, nextRetryAt: NOW + 10 * s },
    ],
    [
      "past the window: no retry",
      input({ since: NOW - 600 * s, failures: 13 }),
      { retry: false, since: NOW - 600 * s, failures: 14 },
    ],
    [
      "a run that worked for longer than the window starts a new outage",
      input({ since: NOW - 3600 * s, failures: 5, startedAt: NOW - 1800 * s }),
      { retry: true, since: NOW, failures: 1, nextRetryAt: NOW + 5 * s },
    ],
    ["0s: never retried", input({ retryForMs: 0 }), { retry: false, since: NOW, failures: 1 }],
  ];
  for (const [name, got, want] of cases) {
    await t.step(name, () => assertEquals(storageRetry(got), want));
  }
});

Deno.test("runId is the uid's first 8 hex digits", () => {
  assertEquals(runId(backup()), "0a1b2c3d");
});
