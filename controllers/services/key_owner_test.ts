import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import type { BackupManifest } from "../../backup/manifest.ts";
import { MemoryStore } from "../../storage/memory.ts";
import {
  BACKUP_UID_METADATA,
  classifyKey,
  type KeyObservation,
  type KeyState,
  observeKey,
} from "./key_owner.ts";

const key = "c/db/20260102-030405.sql.gz";
const me = { uid: "uid-me", namespace: "team-a", name: "nightly" };

function manifest(source?: BackupManifest["source"]): { parsed: BackupManifest } {
  return {
    parsed: {
      manifestVersion: 1,
      key,
      format: "plain",
      compression: "gzip",
      compressionLevel: 6,
      uncompressedSize: 300,
      compressedSize: 100,
      sha256: "a".repeat(64),
      pgDumpVersion: "15",
      serverVersion: "15",
      database: "db",
      startedAt: "2026-01-02T03:04:05.000Z",
      completedAt: "2026-01-02T03:04:06.000Z",
      durationMs: 1000,
      ...(source ? { source } : {}),
    },
  };
}

const source = (namespace: string, backup: string, backupUid: string) => ({
  namespace,
  backup,
  backupUid,
  databaseResource: "db",
  cluster: "c",
});

const dump = (metadata: Record<string, string>, size = 100) => ({ size, metadata });
const ours = { [BACKUP_UID_METADATA]: "uid-me", "dbtether-namespace": "team-a" };
const observe = (o: Partial<KeyObservation>): KeyObservation => ({
  key,
  dump: undefined,
  manifest: undefined,
  ...o,
});

Deno.test("classifyKey", async (t) => {
  const cases: [string, KeyObservation, KeyState["kind"], RegExp?][] = [
    ["nothing at the key", observe({}), "free"],
    [
      "our dump and our manifest: complete",
      observe({ dump: dump(ours), manifest: manifest(source("team-a", "nightly", "uid-me")) }),
      "complete",
    ],
    [
      "our manifest, a dump of an older version without uid: complete",
      observe({ dump: dump({}), manifest: manifest(source("team-a", "nightly", "uid-me")) }),
      "complete",
    ],
    ["our dump without manifest: leftovers", observe({ dump: dump(ours) }), "leftovers"],
    [
      "our manifest but the dump is missing: leftovers",
      observe({ manifest: manifest(source("team-a", "nightly", "uid-me")) }),
      "leftovers",
    ],
    [
      "another Backup's manifest in this namespace: taken, named",
      observe({ dump: dump({}), manifest: manifest(source("team-a", "hourly", "uid-2")) }),
      "taken",
      /written by Backup "hourly"; .*include \{\{ \.RunID \}\} in filenameTemplate/,
    ],
    [
      "an earlier Backup of the same name: taken, said so",
      observe({ manifest: manifest(source("team-a", "nightly", "uid-old")) }),
      "taken",
      /written by an earlier Backup named "nightly"/,
    ],
    [
      "another namespace's manifest: taken, the namespace is not named",
      observe({ manifest: manifest(source("team-b", "secret-name", "uid-3")) }),
      "taken",
      /^(?!.*(team-b|secret-name)).*written by a Backup of another namespace/,
    ],
    [
      "a manifest without source (dbtether backup from a terminal): taken",
      observe({ manifest: manifest() }),
      "taken",
      /written not by a dbtether Backup/,
    ],
    [
      "an object at the manifest key that is not a manifest: taken",
      observe({ manifest: { unreadable: true } }),
      "taken",
    ],
    [
      "another Backup's dump without manifest: taken, never deleted",
      observe({
        dump: dump({
          [BACKUP_UID_METADATA]: "uid-2",
          "dbtether-namespace": "team-a",
          "dbtether-backup": "hourly",
        }),
      }),
      "taken",
      /Backup "hourly"/,
    ],
    [
      "a foreign dump beside our manifest: taken",
      observe({
        dump: dump({ [BACKUP_UID_METADATA]: "uid-2" }),
        manifest: manifest(source("team-a", "nightly", "uid-me")),
      }),
      "taken",
    ],
    ["a dump written outside dbtether: taken", observe({ dump: dump({}) }), "taken"],
  ];
  for (const [name, o, kind, message] of cases) {
    await t.step(name, () => {
      const got = classifyKey(o, me);
      assertEquals(got.kind, kind);
      if (message) assert(got.kind === "taken" && message.test(got.message), JSON.stringify(got));
    });
  }
  await t.step("leftovers say which objects to delete", () => {
    assertEquals(classifyKey(observe({ dump: dump(ours) }), me), {
      kind: "leftovers",
      dump: true,
      manifest: false,
    });
    assertEquals(
      classifyKey(
        observe({ dump: dump(ours, 7), manifest: manifest(source("team-a", "n", "uid-me")) }),
        me,
      ),
      { kind: "leftovers", dump: true, manifest: true },
    );
  });
});

Deno.test("observeKey reads the dump's metadata and the manifest", async () => {
  const store = new MemoryStore();
  const text = (s: string) => new Blob([s]).stream();
  assertEquals(await observeKey(store, key), { key, dump: undefined, manifest: undefined });
  await store.put(key, text("dump"), { metadata: ours });
  await store.put(`${key}.manifest.json`, text("not json"));
  const o = await observeKey(store, key);
  assertEquals(o.dump, { size: 4, metadata: ours });
  assertEquals(o.manifest, { unreadable: true });
});
