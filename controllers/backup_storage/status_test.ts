import { assertEquals } from "../../tests/helpers/assert.ts";
import type { Backup } from "../../crds/backup.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import { kubeTime } from "../../lib/time.ts";
import {
  storageLocation,
  storageProvider,
  storagesUsingSecret,
} from "../services/storage_access.ts";
import { probeReason, REPROBE_MIN_GAP_MS, reprobeDelay, storageStatus } from "./status.ts";

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);
const bs: BackupStorage = {
  apiVersion: "dbtether.io/v1alpha1",
  kind: "BackupStorage",
  metadata: { name: "s", generation: 2 },
  spec: {
    s3: { bucket: "b", forcePathStyle: true },
    pathTemplate: "x",
    credentialsSecretRef: { name: "keys", namespace: "ops" },
  },
};

Deno.test("BackupStorage status", async (t) => {
  await t.step("ready", () => {
    const s = storageStatus(bs, { ok: true }, { provider: "s3", now: NOW });
    assertEquals([s.phase, s.provider, s.lastValidation, s.observedGeneration], [
      "Ready",
      "s3",
      "2026-01-02T03:04:05Z",
      2,
    ]);
    assertEquals(s.conditions?.[0]?.status, "True");
  });
  await t.step("failed with the probe's reason", () => {
    const s = storageStatus(bs, {
      ok: false,
      reason: probeReason("BucketNotFound"),
      message: "Bucket b does not exist",
    }, { provider: "s3", now: NOW });
    assertEquals([s.phase, s.conditions?.[0]?.reason], ["Failed", "BucketNotFound"]);
  });
  await t.step("unknown storage reasons are StorageError", () => {
    assertEquals(probeReason("NotFound"), "StorageError");
    assertEquals(probeReason("AccessDenied"), "AccessDenied");
    assertEquals(probeReason("Unavailable"), "Unavailable");
  });
});

Deno.test("storage access helpers", () => {
  assertEquals(storageProvider(bs.spec), "s3");
  assertEquals(storageLocation(bs.spec), { s3: { bucket: "b", forcePathStyle: true } });
  assertEquals(storagesUsingSecret([bs], "ops", "keys"), ["s"]);
  assertEquals(storagesUsingSecret([bs], "other", "keys"), []);
});

Deno.test("a Backup's outcome asks for a probe when it contradicts the storage's Ready", async (t) => {
  const probed = (ready: boolean, at = NOW - REPROBE_MIN_GAP_MS): BackupStorage => ({
    ...bs,
    status: {
      lastValidation: kubeTime(at),
      conditions: [{
        type: "Ready",
        status: ready ? "True" : "False",
        reason: ready ? "Ready" : "Unreachable",
        message: "",
        lastTransitionTime: kubeTime(at),
      }],
    },
  });
  const backup = (status: Backup["status"]): Backup => ({
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Backup",
    metadata: { name: "b", namespace: "team" },
    spec: { databaseRef: { name: "d" }, storageRef: { name: "s" } },
    status,
  } as Backup);
  const failing = (failures: number, since = NOW - 60_000) =>
    backup({
      phase: "Pending",
      storageFailures: failures,
      storageFailingSince: kubeTime(since),
      conditions: [{
        type: "Ready",
        status: "False",
        reason: failures % 2 ? "StorageFailed" : "StorageStalled",
        message: "",
        lastTransitionTime: kubeTime(since),
      }],
    });
  const running = backup({ phase: "Running" });
  const completed = backup({ phase: "Completed", completedAt: kubeTime(NOW) });
  const cases: [string, BackupStorage | undefined, Backup, Backup | undefined, number?][] = [
    ["Ready storage, first storage failure", probed(true), failing(1), running, 0],
    ["Ready storage, another failure in a row", probed(true), failing(2), failing(1), 0],
    ["Ready storage, a new outage", probed(true), failing(1), failing(1, NOW - 600_000), 0],
    ["Ready storage, the same failure again", probed(true), failing(1), failing(1)],
    ["Ready storage, a completed Backup", probed(true), completed, running],
    ["not Ready storage, a Backup completed", probed(false), completed, running, 0],
    ["not Ready storage, already completed", probed(false), completed, completed],
    ["not Ready storage, a failure", probed(false), failing(2), failing(1)],
    [
      "probed 1 s ago: at the end of the gap",
      probed(true, NOW - 1000),
      failing(2),
      failing(1),
      REPROBE_MIN_GAP_MS - 1000,
    ],
    ["never probed", { ...bs }, completed, running, 0],
    ["the initial list", probed(true), failing(1), undefined],
    ["no such storage", undefined, failing(2), failing(1)],
  ];
  for (const [name, storage, b, old, want] of cases) {
    await t.step(name, () => assertEquals(reprobeDelay(storage, b, old, NOW), want));
  }
});
