import { parseAllDocuments } from "yaml";
import { ALL_KINDS } from "./all.ts";
import { describeDrift, findDrift, renderEverything } from "./generate.ts";
import type { KindDefinition, PrinterColumn } from "./kind.ts";
import { applyDefaults, kindSchema, validateObject } from "./validate.ts";
import { assert, assertEquals } from "../tests/helpers/assert.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const SEEDS = `${ROOT}/../shared/seeds`;
const DBTETHER_README = `${SEEDS}/004_046c2659edfc0ccf.txt`;
const PG_DB_OPERATOR_README = `${SEEDS}/000_9807c643c75dbc15.txt`;

type Manifest = Record<string, unknown> & { apiVersion: string; kind: string };

function kindOf(m: { apiVersion?: unknown; kind?: unknown }): KindDefinition<unknown, unknown> {
  const k = ALL_KINDS.find((k) => k.apiVersion === m.apiVersion && k.kind === m.kind);
  if (!k) throw new Error(`No kind for ${String(m.apiVersion)} ${String(m.kind)}`);
  return k;
}

/** The manifests of our kinds in a README's ```yaml blocks, verbatim. */
async function seedManifests(path: string): Promise<Manifest[]> {
  const text = await Deno.readTextFile(path);
  const out: Manifest[] = [];
  for (const m of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
    for (const doc of parseAllDocuments(m[1] ?? "")) {
      const v = doc.toJS() as Manifest | null;
      if (v && ALL_KINDS.some((k) => k.apiVersion === v.apiVersion && k.kind === v.kind)) {
        out.push(v);
      }
    }
  }
  return out;
}

Deno.test("generated CRD YAML and doc tables are up to date with crds/*.ts", async () => {
  const problem = describeDrift(await findDrift(ROOT, await renderEverything(ROOT)));
  assert(problem === undefined, problem);
});

Deno.test("the staleness check reports missing, stale and extra files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/crds/generated`, { recursive: true });
    await Deno.writeTextFile(`${dir}/crds/generated/all.yaml`, "old");
    await Deno.writeTextFile(`${dir}/crds/generated/gone.example.com.yaml`, "old");
    const drift = await findDrift(dir);
    assertEquals(drift.stale, ["crds/generated/all.yaml"]);
    assertEquals(drift.extra, ["crds/generated/gone.example.com.yaml"]);
    assert(drift.missing.includes("chart/crds/dbclusters.dbtether.io.yaml"));
    assert(describeDrift(drift)?.includes("Run `scripts/deno run -A crds/generate.ts`"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every seed README manifest of our kinds passes structural validation", async (t) => {
  const manifests = [
    ...await seedManifests(DBTETHER_README),
    ...await seedManifests(PG_DB_OPERATOR_README),
  ];
  assertEquals(
    manifests.map((m) => m.kind),
    ["DBCluster", "Database", "DatabaseUser", "PostgresDatabase"],
  );
  for (const m of manifests) {
    await t.step(m.kind, () => assertEquals(validateObject(kindOf(m), m), []));
  }
});

Deno.test("defaults fill in what the README promises", async () => {
  const [cluster, database, user] = await seedManifests(DBTETHER_README);
  const spec = (m: Manifest | undefined) =>
    (applyDefaults(kindSchema(kindOf(m as Manifest)), m) as unknown as {
      spec: Record<string, unknown>;
    })
      .spec;
  assertEquals(spec(cluster).port, 5432);
  assertEquals(spec(cluster).sslMode, "require");
  assertEquals(spec(database).deletionPolicy, "Retain");
  assertEquals(spec(database).revokePublicConnect, true);
  const u = spec(user);
  assertEquals(u.privileges, "readonly");
  assertEquals(u.password, { length: 16 });
  assertEquals(u.connectionLimit, -1);
  assertEquals(u.deletionPolicy, "Delete");
  assertEquals(u.secret, { template: "raw", onConflict: "Fail" });
  assertEquals(u.secretGeneration, "primary");
});

/** The column headers of each `kubectl get` listing in the dbtether README. */
async function readmeColumns(): Promise<Map<string, string[]>> {
  const text = await Deno.readTextFile(DBTETHER_README);
  const out = new Map<string, string[]>();
  for (const m of text.matchAll(/kubectl get (\w+)[^\n]*\n((?:NAMESPACE\s+)?NAME\s[^\n]*)/g)) {
    const headers = (m[2] ?? "").split(/\s{2,}|\s(?=[A-Z])/).map((h) => h.trim()).filter(Boolean);
    out.set(m[1] ?? "", headers.filter((h) => h !== "NAMESPACE" && h !== "NAME"));
  }
  return out;
}

Deno.test("printer columns are those the README shows", async () => {
  const readme = await readmeColumns();
  assertEquals([...readme.keys()], ["dbclusters", "databases", "databaseusers"]);
  for (const [plural, headers] of readme) {
    const kind = ALL_KINDS.find((k) => k.plural === plural);
    const version =
      (kind?.crd.spec as { versions: { additionalPrinterColumns: PrinterColumn[] }[] })
        .versions[0];
    const columns = (version?.additionalPrinterColumns ?? [])
      .filter((c) => !c.priority)
      .map((c) => c.name.toUpperCase());
    assertEquals(columns, headers, plural);
  }
});

/** A cluster-scoped or default-namespace object of `kind` with `spec`. */
function kindObject(kind: string, spec: Record<string, unknown>): Manifest {
  return { apiVersion: "dbtether.io/v1alpha1", kind, metadata: { name: "x" }, spec };
}

function user(spec: Record<string, unknown>): Manifest {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "DatabaseUser",
    metadata: { name: "u", namespace: "default" },
    spec: { databaseRef: { name: "db" }, ...spec },
  };
}

const BAD: { name: string; manifest: Manifest; path: string }[] = [
  {
    name: "password.length 5",
    manifest: user({ password: { length: 5 } }),
    path: "spec.password.length",
  },
  {
    name: "password.length 65",
    manifest: user({ password: { length: 65 } }),
    path: "spec.password.length",
  },
  {
    name: "rotation.days 0",
    manifest: user({ rotation: { days: 0 } }),
    path: "spec.rotation.days",
  },
  {
    name: "rotation.days 366",
    manifest: user({ rotation: { days: 366 } }),
    path: "spec.rotation.days",
  },
  {
    name: "connectionLimit -2",
    manifest: user({ connectionLimit: -2 }),
    path: "spec.connectionLimit",
  },
  {
    name: "privileges superuser",
    manifest: user({ privileges: "superuser" }),
    path: "spec.privileges",
  },
  {
    name: "username of 64 characters",
    manifest: user({ username: "u".repeat(64) }),
    path: "spec.username",
  },
  { name: "empty username", manifest: user({ username: "" }), path: "spec.username" },
  { name: "username with NUL", manifest: user({ username: "a\u0000b" }), path: "spec.username" },
  {
    name: "unknown grant privilege",
    manifest: user({ additionalGrants: [{ tables: ["t"], privileges: ["ALL"] }] }),
    path: "spec.additionalGrants[0].privileges[0]",
  },
  {
    name: "secret template unknown",
    manifest: user({ secret: { template: "env" } }),
    path: "spec.secret.template",
  },
  { name: "unknown field", manifest: user({ passwordLength: 20 }), path: "spec.passwordLength" },
  {
    name: "idleInTransactionTimeout not a duration",
    manifest: user({ idleInTransactionTimeout: "5 minutes" }),
    path: "spec.idleInTransactionTimeout",
  },
  {
    name: "DBCluster without endpoint",
    manifest: kindObject("DBCluster", { credentialsFromEnv: { username: "U", password: "P" } }),
    path: "spec.endpoint",
  },
  {
    name: "DBCluster port 70000",
    manifest: kindObject("DBCluster", { endpoint: "h", port: 70000 }),
    path: "spec.port",
  },
  {
    name: "DBCluster sslMode prefer",
    manifest: kindObject("DBCluster", { endpoint: "h", sslMode: "prefer" }),
    path: "spec.sslMode",
  },
  {
    name: "Database name with capitals in clusterRef",
    manifest: kindObject("Database", { clusterRef: { name: "Main" } }),
    path: "spec.clusterRef.name",
  },
  {
    name: "Database deletionPolicy Orphan",
    manifest: kindObject("Database", { clusterRef: { name: "c" }, deletionPolicy: "Orphan" }),
    path: "spec.deletionPolicy",
  },
  {
    name: "BackupStorage local path relative",
    manifest: kindObject("BackupStorage", { local: { path: "backups" } }),
    path: "spec.local.path",
  },
  // gzip level 10 (valid for zstd) is refused by a CEL rule: tests/crds_admission_test.ts.
  {
    name: "Backup compression level 20",
    manifest: kindObject("Backup", {
      databaseRef: { name: "d" },
      storageRef: { name: "s" },
      compression: { algorithm: "zstd", level: 20 },
    }),
    path: "spec.compression.level",
  },
  {
    name: "Backup compression algorithm lz4",
    manifest: kindObject("Backup", {
      databaseRef: { name: "d" },
      storageRef: { name: "s" },
      compression: { algorithm: "lz4" },
    }),
    path: "spec.compression.algorithm",
  },
  {
    name: "Backup without storageRef",
    manifest: kindObject("Backup", { databaseRef: { name: "d" } }),
    path: "spec.storageRef",
  },
  {
    name: "BackupSchedule cron with four fields",
    manifest: kindObject("BackupSchedule", {
      databaseRef: { name: "d" },
      storageRef: { name: "s" },
      schedule: "0 2 * *",
    }),
    path: "spec.schedule",
  },
  {
    name: "BackupSchedule keepLast -1",
    manifest: {
      apiVersion: "dbtether.io/v1alpha1",
      kind: "BackupSchedule",
      metadata: { name: "b" },
      spec: {
        databaseRef: { name: "d" },
        storageRef: { name: "s" },
        schedule: "@daily",
        retention: { keepLast: -1 },
      },
    },
    path: "spec.retention.keepLast",
  },
  {
    name: "Restore onConflict Drop (case matters)",
    manifest: {
      apiVersion: "dbtether.io/v1alpha1",
      kind: "Restore",
      metadata: { name: "r" },
      spec: {
        source: { backupRef: { name: "b" } },
        target: { databaseRef: { name: "d" } },
        onConflict: "Drop",
      },
    },
    path: "spec.onConflict",
  },
  {
    name: "PostgresDatabase without targetSecret",
    manifest: {
      apiVersion: "experimental.bujarmurati.com/v1",
      kind: "PostgresDatabase",
      metadata: { name: "p" },
      spec: { name: "x" },
    },
    path: "spec.targetSecret",
  },
];

Deno.test("typical bad inputs are rejected at the field that is wrong", async (t) => {
  for (const c of BAD) {
    await t.step(c.name, () => {
      const errors = validateObject(kindOf(c.manifest), c.manifest);
      assert(
        errors.some((e) => e.path === c.path),
        `expected an error at ${c.path}, got ${JSON.stringify(errors)}`,
      );
    });
  }
});

Deno.test("good inputs beyond the READMEs pass structural validation", async (t) => {
  const good: Manifest[] = [
    user({
      username: "ünïcödé-ロール",
      connectionLimit: 10,
      rotation: { days: 30, strategy: "Alternating" },
    }),
    user({
      databaseRef: undefined,
      databases: [{ name: "a", privileges: "readwrite" }, { name: "b", namespace: "other" }],
    }),
    user({
      secret: { template: "custom", keys: { password: "PW" } },
      idleInTransactionTimeout: "1m30s",
    }),
    kindObject("BackupStorage", { s3: { bucket: "bkt", region: "eu-west-1" } }),
    kindObject("Backup", {
      databaseRef: { name: "d" },
      storageRef: { name: "s" },
      ttlAfterCompletion: "1h",
    }),
    kindObject("BackupSchedule", {
      databaseRef: { name: "d" },
      storageRef: { name: "s" },
      schedule: "0 2 * * *",
      retention: { keepLast: 7, keepDaily: 7 },
    }),
    kindObject("Restore", {
      source: { path: "a/b.sql.gz", storageRef: { name: "s" } },
      target: { databaseRef: { name: "d" } },
    }),
  ];
  for (const m of good) {
    const clean = JSON.parse(JSON.stringify(m)) as Manifest;
    await t.step(`${m.kind} ${JSON.stringify(m.spec).slice(0, 60)}`, () => {
      assertEquals(validateObject(kindOf(clean), clean), []);
    });
  }
});
