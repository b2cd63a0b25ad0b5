import { assertEquals } from "../../tests/helpers/assert.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import {
  storageLocation,
  storageProvider,
  storagesUsingSecret,
} from "../services/storage_access.ts";
import { probeReason, storageStatus } from "./status.ts";

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
