/**
 * Backup and Restore through the real `dbtether run` against a real apiserver, a real
 * PostgreSQL (admin not superuser) and real storage servers: a database with several tables,
 * sequences, a view and non-ASCII data is backed up through a Backup resource on each backend
 * (local, MinIO S3, fake-gcs-server, Azurite), restored into a new database through a Restore
 * resource, and both compare equal (row counts and a checksum of every table).
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import {
  assertNoPasswordLeak,
  backupThenRestore,
  backupYaml,
  databaseYaml,
  dumpConnected,
  files,
  fingerprint,
  holdLock,
  type Obj,
  restoreYaml,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { readyReason } from "./helpers/fixtures.ts";
import { freePort } from "./helpers/free_port.ts";
import { startAzurite, startFakeGcs, startMinio } from "./helpers/storage_servers.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";
import { LocalStore } from "../storage/local.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function roundTrip(
  env: TestEnv,
  t: Deno.TestContext,
  o: { label: string; storage: string },
): Promise<void> {
  const ns = await env.namespace(`rt-${o.label}`);
  const src = `src_${o.label}`, dst = `dst_${o.label}`;
  await env.kube.apply(databaseYaml(ns, "source", src) + "---\n" + databaseYaml(ns, "copy", dst));
  await env.waitPhase("database", "source", "Ready", { namespace: ns });
  await env.waitPhase("database", "copy", "Ready", { namespace: ns });
  const seeded = await env.pg.psql(SEED, { database: src });
  assertEquals(seeded.code, 0, seeded.stderr);
  await waitPhase(env, "backupstorage", o.storage, "Ready");

  const { backup: b, restore: r } = await backupThenRestore(env, {
    namespace: ns,
    source: "source",
    target: "copy",
    storage: o.storage,
  });
  const uidPrefix = b.metadata.uid.replace(/-/g, "").slice(0, 8);
  assert(b.status?.path?.startsWith(`test-pg/${src}/`), String(b.status?.path));
  assert(b.status?.path?.endsWith(`-${uidPrefix}.sql.gz`), String(b.status?.path));
  assert((b.status?.sizeBytes ?? 0) > 1000, "a non-trivial dump");
  assertEquals(b.status?.attempts, 1);
  const cols = await env.kube.kubectl(["get", "backup", "b1", "-n", ns]);
  assert(/DATABASE\s+PHASE\s+SIZE\s+DURATION\s+AGE/.test(cols.stdout), cols.stdout);
  assert(/source\s+Completed\s+\d+(\.\d)? KiB\s+\S+/.test(cols.stdout), cols.stdout);

  assertEquals(r.status?.sha256, b.status?.sha256);
  assertEquals(await fingerprint(env, dst), await fingerprint(env, src));
  await t.step(`${o.label}: Events Started and Completed`, async () => {
    const ev = await env.kube.kubectl(["get", "events", "-n", ns, "-o", "json"]);
    const reasons =
      (JSON.parse(ev.stdout).items as { reason: string; involvedObject: { kind: string } }[])
        .map((e) => `${e.involvedObject.kind}/${e.reason}`);
    for (const want of ["Backup/Started", "Backup/Completed", "Restore/Completed"]) {
      assert(reasons.includes(want), `missing Event ${want} in ${reasons.join(", ")}`);
    }
  });
}

Deno.test({ name: "Backup and Restore round trip on every backend", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await env.kube.apply(env.clusterManifest("test-pg"));
  const localDir = await Deno.makeTempDir({ prefix: "dbtether-backups-" });
  try {
    await t.step("local", async (t) => {
      await env.kube.apply(storageYaml("local", { localPath: localDir }));
      await roundTrip(env, t, { label: "local", storage: "local" });
      const files: string[] = [];
      for await (const e of Deno.readDir(`${localDir}/test-pg/src_local`)) {
        if (!e.name.startsWith(".")) files.push(e.name);
      }
      assertEquals(files.length, 2, files.join(", "));
      assert(files.some((f) => f.endsWith(".sql.gz.manifest.json")));
    });
    await t.step("s3 (MinIO)", async (t) => {
      await using minio = await startMinio();
      await minio.createBucket("backups");
      const y = storageYaml("minio", { server: minio });
      await env.kube.apply(y).catch((e) => {
        throw new Error(`${e.message}\n${y}`);
      });
      await roundTrip(env, t, { label: "s3", storage: "minio" });
    });
    await t.step("gcs (fake-gcs-server)", async (t) => {
      await using gcs = await startFakeGcs();
      await gcs.createBucket("backups");
      await env.kube.apply(storageYaml("gcs", { server: gcs }));
      await roundTrip(env, t, { label: "gcs", storage: "gcs" });
    });
    await t.step("azure (Azurite)", async (t) => {
      await using az = await startAzurite();
      await az.createBucket("backups");
      await env.kube.apply(storageYaml("azure", { server: az }));
      await roundTrip(env, t, { label: "azure", storage: "azure" });
    });
    await t.step("the admin password appears nowhere", () => assertNoPasswordLeak(env));
  } finally {
    await Deno.remove(localDir, { recursive: true }).catch(() => {});
  }
});

Deno.test({ name: "BackupStorage probe reasons", ...opts }, async (t) => {
  await using env = await startEnv({ program: true });
  await using minio = await startMinio();
  await minio.createBucket("backups");
  await t.step("missing bucket → BucketNotFound", async () => {
    await env.kube.apply(storageYaml("nobucket", { server: minio, bucket: "no-such-bucket" }));
    assertEquals(
      readyReason(await waitPhase(env, "backupstorage", "nobucket", "Failed")),
      "BucketNotFound",
    );
  });
  await t.step("wrong key → AccessDenied, fixed Secret → Ready", async () => {
    await env.kube.apply(
      storageYaml("wrongkey", { server: minio }).replace(
        `secretAccessKey: "${minio.credentials.secretAccessKey}"`,
        'secretAccessKey: "not-the-key"',
      ),
    );
    assertEquals(
      readyReason(await waitPhase(env, "backupstorage", "wrongkey", "Failed")),
      "AccessDenied",
    );
    await env.kube.apply(storageYaml("wrongkey", { server: minio }));
    await waitPhase(env, "backupstorage", "wrongkey", "Ready");
    const cols = await env.kube.kubectl(["get", "bs", "wrongkey"]);
    assert(
      /PROVIDER\s+PHASE\s+AGE/.test(cols.stdout) && /s3\s+Ready/.test(cols.stdout),
      cols.stdout,
    );
  });
  await t.step("missing credentials Secret → CredentialsMissing", async () => {
    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: BackupStorage
metadata:
  name: nosecret
spec:
  s3:
    bucket: backups
    endpoint: ${minio.endpoint}
    forcePathStyle: true
    region: us-east-1
  credentialsSecretRef:
    name: absent
    namespace: default
`);
    assertEquals(
      readyReason(await waitPhase(env, "backupstorage", "nosecret", "Failed")),
      "CredentialsMissing",
    );
  });
  await t.step("an endpoint that accepts and never answers → Unreachable, bounded", async () => {
    // A loopback listener that takes every connection and never sends a byte.
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of silent) held.push(c);
    })().catch(() => {});
    try {
      const endpoint = `http://127.0.0.1:${silent.addr.port}`;
      await env.kube.apply(
        storageYaml("silent", { server: minio }).replace(minio.endpoint, endpoint),
      );
      const failed = await waitPhase(env, "backupstorage", "silent", "Failed", {
        timeoutMs: budget("backup"),
      });
      assertEquals(readyReason(failed), "Unreachable");
      assert(held.length > 0, "the probe connected to the silent endpoint");
    } finally {
      silent.close();
      for (const c of held) c.close();
      await accepting;
    }
  });
});

Deno.test({ name: "Backup ttlAfterCompletion and metrics", ...opts }, async (t) => {
  const port = freePort();
  await using env = await startEnv({
    pg: true,
    program: true,
    programArgs: ["--metrics-bind-address", `127.0.0.1:${port}`],
  });
  await env.kube.apply(env.clusterManifest("test-pg"));
  const dir = await Deno.makeTempDir({ prefix: "dbtether-ttl-" });
  try {
    await env.kube.apply(storageYaml("local", { localPath: dir }));
    const ns = await env.namespace("bkp-ttl");
    await env.kube.apply(databaseYaml(ns, "app", "ttl_app"));
    await env.waitPhase("database", "app", "Ready", { namespace: ns });
    assertEquals((await env.pg.psql(SEED, { database: "ttl_app" })).code, 0);
    const keyDir = `${dir}/test-pg/ttl_app`;
    let completed: Obj | undefined;

    await t.step("ttlAfterCompletion deletes the Backup; the dump stays", async () => {
      await env.kube.apply(backupYaml(ns, "short", "app", "local", "  ttlAfterCompletion: 6s\n"));
      completed = await waitPhase(env, "backup", "short", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
      });
      const at = Date.now();
      await waitFor(
        "the Backup to be deleted",
        async () => (await env.getJson("backup", "short", ns)) === undefined,
        { timeoutMs: budget("ready") },
      );
      assert(Date.now() - at > 2_000, "deleted well before its TTL");
      const name = completed.status!.path!.split("/").pop()!;
      assertEquals(files(keyDir).sort(), [name, `${name}.manifest.json`]);
    });

    await t.step("a failed backup for the failures metric", async () => {
      const lock = await holdLock(env, "ttl_app", "orders");
      await env.kube.apply(backupYaml(ns, "killed", "app", "local"));
      await waitPhase(env, "backup", "killed", "Running", { namespace: ns });
      await dumpConnected(env, "ttl_app");
      await env.pg.superSql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
          "WHERE datname = 'ttl_app' AND application_name = 'dbtether-backup'",
      );
      await waitPhase(env, "backup", "killed", "Failed", { namespace: ns });
      await lock.release();
    });

    await t.step("/metrics: duration, bytes, last success per database, failures", async () => {
      const text = await waitFor("the backup metrics", async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        const body = await res.text();
        return res.ok && body.includes("dbtether_backup_failures_total{") ? body : undefined;
      });
      const value = (series: string) => {
        const line = text.split("\n").find((l) => l.startsWith(`${series} `));
        assert(line, `no ${series} in /metrics`);
        return Number(line.split(" ")[1]);
      };
      const labels = `{namespace="${ns}",database="app"}`;
      assertEquals(value(`dbtether_backup_duration_seconds_count${labels}`), 1);
      assertEquals(value(`dbtether_backup_bytes_total${labels}`), completed?.status?.sizeBytes);
      assertEquals(value(`dbtether_backup_size_bytes${labels}`), completed?.status?.sizeBytes);
      const last = value(`dbtether_backup_last_success_timestamp_seconds${labels}`);
      assert(Math.abs(last - Date.now() / 1000) < 300, `last success ${last}`);
      assertEquals(value('dbtether_backup_failures_total{reason="DumpFailed"}'), 1);
    });

    await t.step("the admin password appears nowhere", () => assertNoPasswordLeak(env));
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/** A Backup of Database "source" on `storage`, with `template` when given (else the default). */
function keyedBackup(ns: string, name: string, o: { storage: string; template?: string }) {
  const line = o.template ? `  filenameTemplate: ${JSON.stringify(o.template)}\n` : "";
  return backupYaml(ns, name, "source", o.storage).replace(/^ {2}filenameTemplate: .*\n/m, line);
}

type Keyed = Obj & { metadata: { name: string; creationTimestamp: string } };

/**
 * Creates two Backups in one request until both carry the same creation second (the
 * Timestamp variable's resolution); `template(i)` may vary per try so that tries never share
 * a key. Returns their names.
 */
async function twins(
  env: TestEnv,
  ns: string,
  o: { prefix: string; storage: string; template?: (i: number) => string },
): Promise<[string, string]> {
  for (let i = 0; i < 10; i++) {
    const names: [string, string] = [`${o.prefix}-${i}-a`, `${o.prefix}-${i}-b`];
    const template = o.template?.(i);
    await env.kube.apply(
      names.map((n) =>
        keyedBackup(ns, n, { storage: o.storage, ...(template ? { template } : {}) })
      )
        .join("---\n"),
    );
    const [a, b] = await Promise.all(names.map((n) => env.getJson<Keyed>("backup", n, ns)));
    if (a?.metadata.creationTimestamp === b?.metadata.creationTimestamp) return names;
  }
  throw new Error("Could not create two Backups within one second");
}

/** Terminal phase of a Backup, waited for. */
async function settled(env: TestEnv, ns: string, name: string): Promise<Obj> {
  return await waitFor(`Backup ${name} to complete or fail`, async () => {
    const b = await env.getJson<Obj>("backup", name, ns);
    const phase = b?.status?.phase;
    return phase === "Completed" || phase === "Failed" ? b : undefined;
  }, { timeoutMs: budget("backup") });
}

async function sha256Of(stream: ReadableStream<Uint8Array>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await new Response(stream).arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test(
  { name: "Backup keys never collide and stored backups are never overwritten", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("test-pg"));
    await using minio = await startMinio();
    await minio.createBucket("backups");
    const localDir = await Deno.makeTempDir({ prefix: "dbtether-keys-" });
    const stores = {
      local: new LocalStore({ path: localDir }),
      minio: minio.makeStore({ bucket: "backups" }),
    };
    try {
      await env.kube.apply(storageYaml("local", { localPath: localDir }));
      await env.kube.apply(storageYaml("minio", { server: minio }));
      await waitPhase(env, "backupstorage", "local", "Ready");
      await waitPhase(env, "backupstorage", "minio", "Ready");
      const ns = await env.namespace("keys");
      await env.kube.apply(databaseYaml(ns, "source", "keys_src"));
      await env.waitPhase("database", "source", "Ready", { namespace: ns });
      assertEquals((await env.pg.psql(SEED, { database: "keys_src" })).code, 0);
      const source = await fingerprint(env, "keys_src");
      let copies = 0;
      /** Restores a Backup into a new database; returns its fingerprint. */
      const restored = async (backup: string) => {
        const n = ++copies;
        await env.kube.apply(databaseYaml(ns, `copy-${n}`, `keys_copy_${n}`));
        await env.waitPhase("database", `copy-${n}`, "Ready", { namespace: ns });
        await env.kube.apply(
          restoreYaml(ns, `restore-${n}`, `    backupRef:\n      name: ${backup}`, `copy-${n}`),
        );
        await waitPhase(env, "restore", `restore-${n}`, "Completed", {
          namespace: ns,
          timeoutMs: budget("backup"),
        });
        return await fingerprint(env, `keys_copy_${n}`);
      };

      await t.step(
        "default template, two Backups in one second: two keys, both restorable",
        async () => {
          const [a, b] = await twins(env, ns, { prefix: "default", storage: "minio" });
          const done = [await settled(env, ns, a), await settled(env, ns, b)];
          for (const d of done) {
            assertEquals(
              d.status?.phase,
              "Completed",
              JSON.stringify(d.status),
            );
          }
          const [pa, pb] = done.map((d) => d.status!.path!);
          assert(pa !== pb, `both wrote ${pa}`);
          for (const [i, d] of done.entries()) {
            const runId = d.metadata.uid.replace(/-/g, "").slice(0, 8);
            assert(d.status!.path!.endsWith(`-${runId}.sql.gz`), String(d.status?.path));
            assertEquals(await sha256Of(await stores.minio.get(d.status!.path!)), d.status?.sha256);
            assertEquals(await restored([a, b][i]!), source);
          }
        },
      );

      for (const storage of ["local", "minio"] as const) {
        await t.step(
          `${storage}: {{ .Timestamp }}.sql.gz twice in one second → one Completed, one ObjectExists`,
          async () => {
            const [a, b] = await twins(env, ns, {
              prefix: `ts-${storage}`,
              storage,
              template: (i) => `${storage}-${i}-{{ .Timestamp }}.sql.gz`,
            });
            const both = [await settled(env, ns, a), await settled(env, ns, b)];
            const won = both.find((x) => x.status?.phase === "Completed");
            const lost = both.find((x) => x.status?.phase === "Failed");
            assert(won && lost, `phases ${both.map((x) => x.status?.phase)}: one must fail`);
            assertEquals(readyReason(lost), "ObjectExists", JSON.stringify(lost.status));
            assertEquals(lost.status?.path, won.status?.path);
            const winner = [a, b].find((n) => n !== (lost as Keyed).metadata.name);
            assert(
              lost.status?.message?.includes(`written by Backup "${winner}"`) &&
                lost.status.message.includes("include {{ .RunID }} in filenameTemplate"),
              String(lost.status?.message),
            );
            const key = won.status!.path!;
            assertEquals(await sha256Of(await stores[storage].get(key)), won.status?.sha256);
            const under = (await stores[storage].list(key)).map((o) => o.key);
            assertEquals(under, [key, `${key}.manifest.json`]);
            assertEquals(await restored((won as Keyed).metadata.name), source);
          },
        );
      }

      await t.step(
        "a tenant naming another tenant's key fails ObjectExists; nothing of theirs changes",
        async () => {
          // A platform whose pathTemplate does not separate databases: every key is <cluster>/<file>.
          await env.kube.apply(
            storageYaml("flat", { localPath: localDir }) + `  pathTemplate: "{{ .ClusterName }}"\n`,
          );
          await waitPhase(env, "backupstorage", "flat", "Ready");
          const victim = await env.namespace("victim");
          await env.kube.apply(databaseYaml(victim, "source", "keys_victim"));
          await env.waitPhase("database", "source", "Ready", { namespace: victim });
          assertEquals((await env.pg.psql(SEED, { database: "keys_victim" })).code, 0);
          await env.kube.apply(keyedBackup(victim, "nightly", { storage: "flat" }));
          const theirs = await waitPhase(env, "backup", "nightly", "Completed", {
            namespace: victim,
            timeoutMs: budget("backup"),
          });
          const key = theirs.status!.path!;
          const manifestBefore = await new Response(await stores.local.get(`${key}.manifest.json`))
            .text();
          // The attacker backs up its own database to the victim's file name.
          await env.kube.apply(
            keyedBackup(ns, "squat", { storage: "flat", template: key.split("/").pop()! }),
          );
          const refused = await waitPhase(env, "backup", "squat", "Failed", {
            namespace: ns,
            timeoutMs: budget("backup"),
          });
          assertEquals(readyReason(refused), "ObjectExists", JSON.stringify(refused.status));
          assertEquals(refused.status?.path, key);
          const message = refused.status?.message ?? "";
          assert(message.includes("written by a Backup of another namespace"), message);
          assert(!message.includes(victim) && !message.includes("nightly"), message);
          assertEquals(await sha256Of(await stores.local.get(key)), theirs.status?.sha256);
          assertEquals(
            await new Response(await stores.local.get(`${key}.manifest.json`)).text(),
            manifestBefore,
          );
          const after = await env.getJson<Obj>("backup", "nightly", victim);
          assertEquals(after?.status, theirs.status);
        },
      );

      await t.step("the admin password appears nowhere", () => assertNoPasswordLeak(env));
    } finally {
      await stores.minio.close();
      await Deno.remove(localDir, { recursive: true }).catch(() => {});
    }
  },
);

Deno.test({ name: "zstd Backup and Restore through the operator (MinIO)", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await env.kube.apply(env.clusterManifest("test-pg"));
  await using minio = await startMinio();
  await minio.createBucket("backups");
  const bucket = minio.makeStore({ bucket: "backups" });
  const ns = await env.namespace("zstd");
  await env.kube.apply(
    storageYaml("minio", { server: minio }) + "---\n" + databaseYaml(ns, "source", "src_zstd") +
      "---\n" + databaseYaml(ns, "copy", "dst_zstd"),
  );
  await env.waitPhase("database", "source", "Ready", { namespace: ns });
  await env.waitPhase("database", "copy", "Ready", { namespace: ns });
  const seeded = await env.pg.psql(SEED, { database: "src_zstd" });
  assertEquals(seeded.code, 0, seeded.stderr);
  await waitPhase(env, "backupstorage", "minio", "Ready");
  // No filenameTemplate: the default name follows the codec.
  const backup = (name: string, compression: string) =>
    backupYaml(ns, name, "source", "minio", compression).replace(/^ {2}filenameTemplate:.*\n/m, "");
  const head = async (key: string) => {
    const bytes = new Uint8Array(await new Response(await bucket.get(key)).arrayBuffer());
    return { bytes, magic: [...bytes.subarray(0, 4)] };
  };
  try {
    await t.step("a zstd Backup completes with a valid .sql.zst object", async () => {
      await env.kube.apply(backup("bz", "  compression:\n    algorithm: zstd\n"));
      const b = await waitPhase(env, "backup", "bz", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
      });
      const uidPrefix = b.metadata.uid.replace(/-/g, "").slice(0, 8);
      const key = String(b.status?.path);
      assert(key.endsWith(`-${uidPrefix}.sql.zst`), key);
      const { bytes, magic } = await head(key);
      assertEquals(magic, [0x28, 0xb5, 0x2f, 0xfd]);
      assertEquals(bytes.length, b.status?.sizeBytes);
      const zstdT = await new Deno.Command("zstd", { args: ["-t", "-q"], stdin: "piped" })
        .spawn();
      await new Blob([bytes as BufferSource]).stream().pipeTo(zstdT.stdin);
      assertEquals((await zstdT.status).code, 0, "zstd -t");
      const manifest = JSON.parse(
        new TextDecoder().decode((await head(`${key}.manifest.json`)).bytes),
      );
      assertEquals([manifest.compression, manifest.compressionLevel], ["zstd", 3]);
      // Counted in the snapshot pg_dump dumped: exact, per table.
      assertEquals(manifest.counts.perTable, [
        { schema: "public", table: "Grüße", rows: 3 },
        { schema: "public", table: "customers", rows: 500 },
        { schema: "public", table: "orders", rows: 3000 },
      ]);
      const counts = (b.status as { counts?: Record<string, unknown> }).counts;
      assertEquals(counts, { tables: 3, rows: 3503, digest: manifest.counts.digest });
    });

    await t.step("a Restore from it equals the source", async () => {
      await env.kube.apply(restoreYaml(ns, "rz", "    backupRef:\n      name: bz", "copy"));
      await waitPhase(env, "restore", "rz", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
      });
      assertEquals(await fingerprint(env, "dst_zstd"), await fingerprint(env, "src_zstd"));
    });

    await t.step("a Backup without compression is gzip, .sql.gz, as before", async () => {
      await env.kube.apply(backup("bg", ""));
      const b = await waitPhase(env, "backup", "bg", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
      });
      const key = String(b.status?.path);
      assert(key.endsWith(".sql.gz"), key);
      assertEquals((await head(key)).magic.slice(0, 2), [0x1f, 0x8b]);
      const spec = JSON.parse(
        (await env.kube.kubectl(["get", "backup", "bg", "-n", ns, "-o", "json"])).stdout,
      ).spec;
      assertEquals(spec.compression, { algorithm: "gzip" });
    });
  } finally {
    await bucket.close();
  }
});
