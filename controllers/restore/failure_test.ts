import { assertEquals } from "../../tests/helpers/assert.ts";
import { RestoreError } from "../../backup/errors.ts";
import { RetryableError, TerminalError } from "../../lib/errors.ts";
import { StorageError } from "../../storage/store.ts";
import { restoreFailure, StepError } from "./failure.ts";

Deno.test("restoreFailure maps each failure to one Restore reason", async (t) => {
  const cases: [string, unknown, { reason: string; message: string }][] = [
    [
      "the engine's reason as it is",
      new RestoreError("ChecksumMismatch", "bad sum"),
      { reason: "ChecksumMismatch", message: "bad sum" },
    ],
    [
      "a storage failure",
      new StorageError("Unreachable", "down"),
      { reason: "StorageFailed", message: "Cannot use the backup storage: down" },
    ],
    [
      "a step's refusal",
      new StepError("SignatureInvalid", "changed"),
      { reason: "SignatureInvalid", message: "changed" },
    ],
    [
      "a target refusal",
      new TerminalError("TargetNotEmpty", "has tables"),
      { reason: "TargetNotEmpty", message: "has tables" },
    ],
    [
      "another terminal error",
      new TerminalError("InvalidName", "bad"),
      { reason: "RestoreFailed", message: "bad" },
    ],
    [
      "an unreachable server: retried, not failed",
      new RetryableError("ClusterUnreachable", "no route"),
      { reason: "ClusterNotReady", message: "no route" },
    ],
    [
      "anything else",
      new Error("boom"),
      { reason: "RestoreFailed", message: "Restore failed: boom" },
    ],
  ];
  for (const [name, e, want] of cases) {
    await t.step(name, () => assertEquals(restoreFailure(e), want));
  }
});
