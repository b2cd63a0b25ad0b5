import { assert, assertEquals, assertThrows } from "../tests/helpers/assert.ts";
import {
  type BackupManifest,
  canonicalManifest,
  encodeManifest,
  parseManifest,
  signingKey,
  signManifest,
  verifyManifest,
} from "./manifest.ts";

const key = signingKey(new Uint8Array(32).fill(7));
const other = signingKey(new Uint8Array(32).fill(9));

const manifest: BackupManifest = {
  manifestVersion: 1,
  key: "test-pg/app/20260101-000000-abcd1234.sql.gz",
  format: "plain",
  compression: "gzip",
  compressionLevel: 6,
  uncompressedSize: 1000,
  compressedSize: 400,
  sha256: "a".repeat(64),
  pgDumpVersion: "15.18",
  serverVersion: "15.18",
  database: "app",
  startedAt: "2026-01-01T00:00:00.000Z",
  completedAt: "2026-01-01T00:00:01.000Z",
  durationMs: 1000,
  source: {
    namespace: "team-a",
    backup: "nightly",
    backupUid: "0d4f",
    databaseResource: "app",
    cluster: "main",
  },
};

/** The manifest as stored and read back (what a restore verifies). */
const roundTrip = (m: BackupManifest) => parseManifest(new TextDecoder().decode(encodeManifest(m)));

Deno.test("a signed manifest verifies after a round trip through storage", () => {
  const signed = signManifest(manifest, key);
  assertEquals(signed.signature?.keyId, key.id);
  assertEquals(verifyManifest(roundTrip(signed), [key]), "valid");
  assertEquals(verifyManifest(roundTrip(signed), [other, key]), "valid");
});

Deno.test("the signature covers every field", async (t) => {
  const signed = signManifest(manifest, key);
  const edits: [string, (m: BackupManifest) => void][] = [
    ["sha256", (m) => (m.sha256 = "b".repeat(64))],
    ["compressedSize", (m) => (m.compressedSize += 1)],
    ["key", (m) => (m.key = "test-pg/app/other.sql.gz")],
    ["format", (m) => (m.format = "custom")],
    ["source.namespace", (m) => (m.source!.namespace = "team-b")],
    ["source.backup", (m) => (m.source!.backup = "other")],
    ["source.backupUid", (m) => (m.source!.backupUid = "ffff")],
    ["source.databaseResource", (m) => (m.source!.databaseResource = "other")],
    ["source removed", (m) => delete m.source],
    ["a field added", (m) => ((m as unknown as Record<string, unknown>).extra = 1)],
    ["the signature value", (m) => (m.signature!.value = "0".repeat(64))],
    ["the key id (another known key)", (m) => (m.signature!.keyId = other.id)],
  ];
  for (const [name, edit] of edits) {
    await t.step(name, () => {
      const m = structuredClone(roundTrip(signed));
      edit(m);
      assertEquals(verifyManifest(m, [key, other]), "invalid");
    });
  }
});

Deno.test("unsigned, unknown keys and malformed signatures", () => {
  assertEquals(verifyManifest(manifest, [key]), "unsigned");
  assertEquals(verifyManifest(signManifest(manifest, other), [key]), "unknownKey");
  assertEquals(verifyManifest(signManifest(manifest, key), []), "unknownKey");
  const bad = { ...manifest, signature: { algorithm: "MD5", keyId: key.id, value: "x" } };
  assertEquals(verifyManifest(bad as unknown as BackupManifest, [key]), "invalid");
});

Deno.test("the canonical form ignores field order and whitespace, not values", () => {
  const reversed = (o: object): object =>
    Object.fromEntries(
      Object.entries(o).reverse().map((
        [k, v],
      ) => [k, v && typeof v === "object" ? reversed(v) : v]),
    );
  const reordered = reversed(manifest);
  assertEquals(Object.keys(reordered)[0], "source");
  assertEquals(canonicalManifest(reordered), canonicalManifest(manifest));
  assert(!canonicalManifest(manifest).includes(" "));
  const signed = signManifest(manifest, key);
  assertEquals(canonicalManifest(signed), canonicalManifest(manifest));
});

Deno.test("keys are at least 32 bytes; the id does not reveal the key", () => {
  assertThrows(() => signingKey(new Uint8Array(16)), RangeError, "at least 32");
  assert(/^[0-9a-f]{16}$/.test(key.id));
  assert(key.id !== other.id);
});
