import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { backupTemplate } from "../../tests/helpers/objects.ts";
import type { Backup } from "../../crds/backup.ts";
import type { BackupManifest } from "../../backup/manifest.ts";
import {
  completedStatus,
  failedStatus,
  interruptedStatus,
  ordinal,
  progressStatus,
  queuedStatus,
  runningStatus,
  storageFailedStatus,
  storageRetryStatus,
} from "./status.ts";

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);
const b = (status?: Backup["status"]): Backup => ({
  apiVersion: "dbtether.io/v1alpha1",
  kind: "Backup",
  metadata: { name: "b", namespace: "n", generation: 1 },
  spec: backupTemplate({ filenameTemplate: "x" }),
  ...(status ? { status } : {}),
});

const manifest: BackupManifest = {
  manifestVersion: 1,
  key: "c/d/x.sql.gz",
  format: "plain",
  compression: "gzip",
  compressionLevel: 6,
  uncompressedSize: 4096,
  compressedSize: 1536,
  sha256: "a".repeat(64),
  pgDumpVersion: "15.8",
  serverVersion: "15.8",
  database: "d",
  startedAt: "2026-01-02T03:00:00.000Z",
  completedAt: "2026-01-02T03:01:23.000Z",
  durationMs: 83_000,
};

const runArgs = {
  attempt: 2,
  key: "c/d/x.sql.gz",
  clusterName: "c",
  databaseName: "d",
  storageName: "s",
  format: "plain" as const,
  now: NOW,
};

Deno.test("Backup status transitions", async (t) => {
  const running = runningStatus(b({ phase: "Pending", attempts: 1 }), runArgs);
  await t.step("running records the attempt, key and start", () => {
    assertEquals(running.phase, "Running");
    assertEquals(running.attempts, 2);
    assertEquals(running.path, "c/d/x.sql.gz");
    assertEquals(running.startedAt, "2026-01-02T03:04:05Z");
    assertEquals(running.conditions?.[0]?.reason, "Running");
  });
  await t.step("progress only while running", () => {
    const p = progressStatus(b(running), { bytes: 10, uncompressedBytes: 40, now: NOW });
    assertEquals(p?.progress?.bytes, 10);
    assertEquals(
      progressStatus(b({ phase: "Failed" }), { bytes: 1, uncompressedBytes: 1, now: NOW }),
      undefined,
    );
  });
  await t.step("completed from the manifest: size, duration, Ready", () => {
    const c = completedStatus(b(running), { manifest, now: NOW });
    assertEquals(c.phase, "Completed");
    assertEquals(c.size, "1.5 KiB");
    assertEquals(c.duration, "1m23s");
    assertEquals(c.sizeBytes, 1536);
    assertEquals(c.progress, undefined);
    assertEquals(c.conditions?.[0]?.status, "True");
  });
  await t.step("failed keeps the reason and message", () => {
    const f = failedStatus(b(running), {
      reason: "DumpFailed",
      message: "Backup failed: x",
      now: NOW,
    });
    assertEquals(f.phase, "Failed");
    assertEquals(f.conditions?.[0]?.reason, "DumpFailed");
    assertEquals(f.message, "Backup failed: x");
    assertEquals(f.attempts, 2);
  });
  await t.step("interrupted goes back to Pending keeping attempts, and is counted", () => {
    const i = interruptedStatus(b(running), { message: "Interrupted", now: NOW });
    assertEquals(i.phase, "Pending");
    assertEquals(i.attempts, 2);
    assertEquals(i.interruptions, 1);
    assertEquals(i.conditions?.[0]?.reason, "Interrupted");
    const again = interruptedStatus(b({ ...i, phase: "Running" }), { message: "x", now: NOW });
    assertEquals(again.interruptions, 2);
  });
  const outage = {
    detail: "Cannot upload the backup: Unreachable: S3 endpoint is unreachable: ECONNREFUSED",
    since: NOW - 35_000,
    failures: 4,
    retryForMs: 600_000,
    now: NOW,
  };
  await t.step("a storage failure in the window: Pending with the next retry time", () => {
    const r = storageRetryStatus(b(running), { ...outage, nextRetryAt: NOW + 40_000 });
    assertEquals(r.phase, "Pending");
    assertEquals(r.conditions?.[0]?.reason, "StorageFailed");
    assertEquals(r.nextRetryAt, "2026-01-02T03:04:45Z");
    assertEquals([r.storageFailures, r.storageFailingSince], [4, "2026-01-02T03:03:30Z"]);
    assertEquals(r.interruptions, undefined);
    assertEquals(
      r.message,
      `${outage.detail}; retrying at 2026-01-02T03:04:45Z (the storage has been failing for ` +
        `35s; retried for up to 10m, then the Backup fails)`,
    );
    const next = runningStatus(b(r), { ...runArgs, attempt: 3 });
    assertEquals(next.nextRetryAt, undefined);
    assertEquals(next.storageFailures, 4);
  });
  await t.step("past the window: Failed, naming the storage error and how long", () => {
    const f = storageFailedStatus(b(running), { ...outage, since: NOW - 612_000, failures: 14 });
    assertEquals(f.phase, "Failed");
    assertEquals(f.conditions?.[0]?.reason, "StorageFailed");
    assertEquals(
      f.message,
      `${outage.detail}; gave up after retrying for 10m12s (14 failed runs; ` +
        `--backup-storage-retry-for 10m)`,
    );
    assertEquals(f.nextRetryAt, undefined);
  });
  await t.step("queued says its position", () => {
    const q = queuedStatus(b(), { position: 2, now: NOW });
    assert(q.message?.includes("2nd in queue"), q.message);
  });
  await t.step("queued behind a full BackupStorage names it", () => {
    const q = queuedStatus(b(), {
      position: 1,
      now: NOW,
      blockedBy: { limit: "storage", name: "stuck", running: 1 },
    });
    assertEquals(
      q.message,
      'Waiting for a slot on BackupStorage "stuck" (1 running there, ' +
        "--max-concurrent-backups-per-storage; 1st in queue)",
    );
    assertEquals(q.conditions?.[0]?.reason, "WaitingForSlot");
  });
  await t.step("a stalled storage's retry and failure keep the StorageStalled reason", () => {
    const stalled = { ...outage, reason: "StorageStalled" as const };
    const r = storageRetryStatus(b(), { ...stalled, nextRetryAt: NOW + 5000 });
    assertEquals([r.phase, r.conditions?.[0]?.reason], ["Pending", "StorageStalled"]);
    const f = storageFailedStatus(b(), stalled);
    assertEquals([f.phase, f.conditions?.[0]?.reason], ["Failed", "StorageStalled"]);
  });
});

Deno.test("ordinal numbers for the queue position", () => {
  assertEquals(
    [1, 2, 3, 4, 11, 12, 21, 22].map(ordinal).join(","),
    "1st,2nd,3rd,4th,11th,12th,21st,22nd",
  );
});
