import { assertEquals } from "../../tests/helpers/assert.ts";
import { BackupError } from "../../backup/errors.ts";
import { RetryableError } from "../../lib/errors.ts";
import { StorageError } from "../../storage/store.ts";
import { backupFailure, storageFailure } from "./outcome.ts";

Deno.test("backupFailure maps each failure to one Backup reason", async (t) => {
  const cases: [string, unknown, { reason: string; message: string }][] = [
    [
      "the engine's reason as it is",
      new BackupError("ToolNotFound", "no pg_dump"),
      { reason: "ToolNotFound", message: "no pg_dump" },
    ],
    [
      "only older client tools: ToolTooOld as it is",
      new BackupError("ToolTooOld", "pg_dump must be of major 16 or newer"),
      { reason: "ToolTooOld", message: "pg_dump must be of major 16 or newer" },
    ],
    [
      "a storage failure, with the storage's reason",
      new StorageError("AccessDenied", "no"),
      { reason: "StorageFailed", message: "Cannot use the backup storage: AccessDenied: no" },
    ],
    [
      "a stall, naming the storage",
      new StorageError("Stalled", 'BackupStorage "x" stalled: it did not answer'),
      {
        reason: "StorageStalled",
        message: 'Cannot use the backup storage: BackupStorage "x" stalled: it did not answer',
      },
    ],
    [
      "the engine's StorageStalled as it is",
      new BackupError("StorageStalled", "Cannot upload the backup: stalled"),
      { reason: "StorageStalled", message: "Cannot upload the backup: stalled" },
    ],
    [
      "another domain error is the dump's failure",
      new RetryableError("ClusterUnreachable", "no route"),
      { reason: "DumpFailed", message: "Backup failed: no route" },
    ],
    [
      "anything else",
      new Error("boom"),
      { reason: "DumpFailed", message: "Backup failed: boom" },
    ],
  ];
  for (const [name, e, want] of cases) {
    await t.step(name, () => assertEquals(backupFailure(e), want));
  }
});

Deno.test("storageFailure: only an unreachable or failing storage is retried", async (t) => {
  const cases: [string, unknown, boolean][] = [
    ["unreachable", new StorageError("Unreachable", "down"), true],
    ["unavailable or throttling (503, 429)", new StorageError("Unavailable", "503"), true],
    [
      "the engine's StorageFailed caused by a server error",
      new BackupError("StorageFailed", "x", { cause: new StorageError("StorageError", "500") }),
      true,
    ],
    ["a stalled storage", new StorageError("Stalled", "stalled"), true],
    [
      "the engine's StorageStalled",
      new BackupError("StorageStalled", "x", { cause: new StorageError("Stalled", "s") }),
      true,
    ],
    ["access denied is configuration", new StorageError("AccessDenied", "no"), false],
    ["a dump failure", new BackupError("DumpFailed", "x"), false],
  ];
  for (const [name, e, want] of cases) {
    await t.step(name, () => assertEquals(storageFailure(e), want));
  }
});
