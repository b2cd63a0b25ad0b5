import { assertEquals } from "../../tests/helpers/assert.ts";
import type { BackupManifest, SignatureVerdict } from "../../backup/manifest.ts";
import { checkTrust, type TrustInput } from "./trust.ts";

const manifest = (source?: string): BackupManifest => ({
  manifestVersion: 1,
  key: "k/a.sql.gz",
  format: "plain",
  compression: "gzip",
  compressionLevel: 6,
  uncompressedSize: 1,
  compressedSize: 1,
  sha256: "a".repeat(64),
  pgDumpVersion: "15.18",
  serverVersion: "15.18",
  database: "a",
  startedAt: "",
  completedAt: "",
  durationMs: 0,
  ...(source === undefined ? {} : {
    source: { namespace: source, backup: "b", backupUid: "u", databaseResource: "d", cluster: "c" },
  }),
  signature: { algorithm: "HMAC-SHA256", keyId: "0123456789abcdef", value: "0".repeat(64) },
});

const input = (o: Partial<TrustInput> & { source?: string | null }): TrustInput => ({
  manifest: manifest(o.source === null ? undefined : o.source ?? "team-b"),
  verdict: "valid",
  key: "k/a.sql.gz",
  storage: "s3",
  keyring: "Secret dbtether/dbtether-backup-signing",
  namespace: "team-b",
  allowUnsigned: false,
  crossNamespace: false,
  ...o,
});

Deno.test("checkTrust", async (t) => {
  const cases: [string, Partial<TrustInput> & { source?: string | null }, string][] = [
    ["own namespace, signed", {}, "ok"],
    ["another namespace's backup", { source: "team-a" }, "CrossNamespaceRestoreNotAllowed"],
    ["no source counts as foreign", { source: null }, "CrossNamespaceRestoreNotAllowed"],
    ["another namespace's backup, granted", { source: "team-a", crossNamespace: true }, "ok"],
    ["no source, granted", { source: null, crossNamespace: true }, "ok"],
    ["unsigned", { verdict: "unsigned" }, "BackupNotSigned"],
    ["unsigned, allowed", { verdict: "unsigned", allowUnsigned: true }, "ok"],
    ["unknown key", { verdict: "unknownKey" }, "SignatureInvalid"],
    ["unknown key, allowed", { verdict: "unknownKey", allowUnsigned: true }, "ok"],
    ["changed after signing", { verdict: "invalid" }, "SignatureInvalid"],
    ["changed after signing, even when unsigned is allowed", {
      verdict: "invalid",
      allowUnsigned: true,
    }, "SignatureInvalid"],
    ["unsigned + foreign: allowUnsigned alone is not enough", {
      verdict: "unsigned",
      allowUnsigned: true,
      source: "team-a",
    }, "CrossNamespaceRestoreNotAllowed"],
    ["unsigned import, both granted", {
      verdict: "unsigned",
      allowUnsigned: true,
      source: null,
      crossNamespace: true,
    }, "ok"],
  ];
  for (const [name, o, want] of cases) {
    await t.step(name, () => {
      const d = checkTrust(input(o));
      assertEquals(d.ok ? "ok" : d.reason, want);
      if (!d.ok) {
        // Every refusal names the object, the storage and (unless nothing may allow it, a
        // changed manifest) what the platform team can set.
        const parts = [
          '"k/a.sql.gz"',
          '"s3"',
          ...(o.verdict === "invalid" ? [] : ["spec.restores."]),
        ];
        for (const part of parts) {
          assertEquals(d.message.includes(part), true, `${part} in: ${d.message}`);
        }
      }
    });
  }
  await t.step("an unknown key is named, the keys' place too", () => {
    const d = checkTrust(input({ verdict: "unknownKey" as SignatureVerdict }));
    assertEquals(!d.ok && d.message.includes("0123456789abcdef"), true);
    assertEquals(!d.ok && d.message.includes("Secret dbtether/dbtether-backup-signing"), true);
  });
});
