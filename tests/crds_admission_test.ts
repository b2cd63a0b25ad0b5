/**
 * The CRDs installed into a real kube-apiserver: the seed READMEs' manifests apply verbatim,
 * `kubectl get` shows the README's columns, and bad input is rejected at admission with a
 * message that says why (OpenAPI validation and the CEL rules, which the unit tests cannot run).
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotStrictEquals,
  assertStrictEquals,
} from "./helpers/assert.ts";
import { startKube } from "./helpers/kube.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const SEEDS = `${ROOT}/../shared/seeds`;
const DBTETHER_README = `${SEEDS}/004_046c2659edfc0ccf.txt`;
const PG_DB_OPERATOR_README = `${SEEDS}/000_9807c643c75dbc15.txt`;
const API = "dbtether.io/v1alpha1";

/** The ```yaml blocks of a README, as written. */
async function yamlBlocks(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(path);
  return [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
}

type Kube = Awaited<ReturnType<typeof startKube>>;

async function applyDryRun(kube: Kube, manifest: unknown, ns: string) {
  return await kube.kubectl(
    ["apply", "--dry-run=server", "-n", ns, "-f", "-"],
    { stdin: JSON.stringify(manifest) },
  );
}

function header(stdout: string): string[] {
  return (stdout.split("\n")[0] ?? "").trim().split(/\s{2,}|\s+(?=[A-Z])/);
}

const cluster = (spec: Record<string, unknown>) => ({
  apiVersion: API,
  kind: "DBCluster",
  metadata: { name: "c" },
  spec: { endpoint: "db.example", ...spec },
});
const secretRef = { credentialsSecretRef: { name: "admin", namespace: "default" } };
const database = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: API,
  kind: "Database",
  metadata: { name },
  spec: { clusterRef: { name: "c" }, ...spec },
});
const user = (spec: Record<string, unknown>, name = "u") => ({
  apiVersion: API,
  kind: "DatabaseUser",
  metadata: { name },
  spec: { databaseRef: { name: "db" }, ...spec },
});
const storage = (spec: Record<string, unknown>) => ({
  apiVersion: API,
  kind: "BackupStorage",
  metadata: { name: "s" },
  spec,
});
const backup = (spec: Record<string, unknown>) => ({
  apiVersion: API,
  kind: "Backup",
  metadata: { name: "b" },
  spec: { databaseRef: { name: "d" }, storageRef: { name: "s" }, ...spec },
});
const verifySchedule = (verify: Record<string, unknown>) => ({
  apiVersion: API,
  kind: "BackupSchedule",
  metadata: { name: "bs" },
  spec: { schedule: "0 2 * * *", databaseRef: { name: "d" }, storageRef: { name: "s" }, verify },
});
const restore = (source: Record<string, unknown>) => ({
  apiVersion: API,
  kind: "Restore",
  metadata: { name: "r" },
  spec: { source, target: { databaseRef: { name: "d" } } },
});
const pgdb = (name: string) => ({
  apiVersion: "experimental.bujarmurati.com/v1",
  kind: "PostgresDatabase",
  metadata: { name: "p" },
  spec: { name, targetSecret: { name: "s" } },
});

const u64bytes = "ü".repeat(32); // 32 characters, 64 bytes
const u63bytes = "ロ".repeat(21); // 21 characters, 63 bytes

/** Each must be rejected with a message containing `expect`. */
const REJECTED: { name: string; manifest: unknown; expect: string }[] = [
  {
    name: "DBCluster with both credential sources",
    manifest: cluster({ ...secretRef, credentialsFromEnv: { username: "U", password: "P" } }),
    expect:
      "exactly one of credentialsSecretRef, credentialsFromEnv and authentication must be set",
  },
  {
    name: "DBCluster with no credential source",
    manifest: cluster({}),
    expect:
      "exactly one of credentialsSecretRef, credentialsFromEnv and authentication must be set",
  },
  {
    name: "DBCluster with a Secret and IAM authentication",
    manifest: cluster({
      ...secretRef,
      authentication: { type: "awsIam", username: "admin", region: "eu-west-1" },
    }),
    expect: "exactly one of credentialsSecretRef, credentialsFromEnv and authentication",
  },
  {
    name: "DBCluster awsIam without a region",
    manifest: cluster({ authentication: { type: "awsIam", username: "admin" } }),
    expect: "authentication.region is required for awsIam",
  },
  {
    name: "DBCluster awsIam with an Azure scope",
    manifest: cluster({
      authentication: { type: "awsIam", username: "a", region: "eu-west-1", scope: "x" },
    }),
    expect: "authentication.scope applies to azureEntra only",
  },
  {
    name: "DatabaseUser by IAM with validUntil.afterPasswordChange",
    manifest: user({
      authentication: { type: "awsIam", region: "eu-west-1" },
      validUntil: { afterPasswordChange: "744h" },
    }),
    expect: "validUntil.afterPasswordChange follows the password, and an IAM user",
  },
  {
    name: "DatabaseUser with databaseRef and database",
    manifest: user({ database: { name: "db2" } }),
    expect: "exactly one of databaseRef, database and databases must be set",
  },
  {
    name: "DatabaseUser with none of databaseRef, database, databases",
    manifest: { ...user({}), spec: { privileges: "readonly" } },
    expect: "exactly one of databaseRef, database and databases must be set",
  },
  {
    name: "DatabaseUser listing a Database twice",
    manifest: { ...user({}), spec: { databases: [{ name: "a" }, { name: "a" }] } },
    expect: "databases must not list the same Database of this namespace twice",
  },
  {
    name: "username of 64 bytes in 32 characters",
    manifest: user({ username: u64bytes }),
    expect: "username must be at most 63 bytes",
  },
  { name: "username postgres", manifest: user({ username: "postgres" }), expect: "reserved name" },
  { name: "username PUBLIC", manifest: user({ username: "PUBLIC" }), expect: "reserved name" },
  {
    name: "username current_user",
    manifest: user({ username: "current_user" }),
    expect: "reserved name",
  },
  { name: "username rdsadmin", manifest: user({ username: "rdsadmin" }), expect: "reserved name" },
  {
    name: "username pg_monitor",
    manifest: user({ username: "pg_monitor" }),
    expect: "username must not start with pg_ or rds_",
  },
  {
    name: "username rds_superuser",
    manifest: user({ username: "rds_superuser" }),
    expect: "username must not start with pg_ or rds_",
  },
  {
    name: "DatabaseUser named postgres without username",
    manifest: user({}, "postgres"),
    expect: "the default username (metadata.name) must not be a reserved name",
  },
  {
    name: "DatabaseUser name of 64 characters without username",
    manifest: user({}, "a".repeat(64)),
    expect: "the default username (metadata.name) must be at most 63 bytes",
  },
  {
    name: "Alternating rotation with a 62-byte username",
    manifest: user({ username: "a".repeat(62), rotation: { days: 30, strategy: "Alternating" } }),
    expect: "with rotation strategy Alternating, username must be at most 61 bytes",
  },
  {
    name: "password.length 5",
    manifest: user({ password: { length: 5 } }),
    expect:
      "spec.password.length: Invalid value: 5: spec.password.length in body should be greater than or equal to 12",
  },
  {
    name: "password.length 65",
    manifest: user({ password: { length: 65 } }),
    expect: "should be less than or equal to 64",
  },
  {
    name: "rotation.days 0",
    manifest: user({ rotation: { days: 0 } }),
    expect: "should be greater than or equal to 1",
  },
  {
    name: "rotation with days and interval",
    manifest: user({ rotation: { days: 1, interval: "1h" } }),
    expect: "set rotation.days or rotation.interval, not both",
  },
  {
    name: "connectionLimit 0",
    manifest: user({ connectionLimit: 0 }),
    expect: "connectionLimit must be -1 (no limit) or at least 1",
  },
  {
    name: "perDatabase with secret.name",
    manifest: user({ secretGeneration: "perDatabase", secret: { name: "mine" } }),
    expect: "secret.name must be unset and secret.onConflict must be Fail",
  },
  {
    name: "perDatabase with onConflict Adopt",
    manifest: user({ secretGeneration: "perDatabase", secret: { onConflict: "Adopt" } }),
    expect: "secret.name must be unset and secret.onConflict must be Fail",
  },
  {
    name: "secret.keys without template custom",
    manifest: user({ secret: { keys: { password: "PW" } } }),
    expect: "secret.keys is only used with template custom",
  },
  {
    name: "Database name template1",
    manifest: database("d", { databaseName: "template1" }),
    expect: "databaseName must not be a reserved name",
  },
  {
    name: "Database named pg-data without databaseName (default pg_data)",
    manifest: database("pg-data"),
    expect: "must not start with pg_ or rds_",
  },
  {
    name: "Database name of 70 characters without databaseName",
    manifest: database("a".repeat(70)),
    expect: "the default database name (metadata.name with '-' → '_') must be at most 63 bytes",
  },
  {
    name: "BackupStorage with s3 and local",
    manifest: storage({ s3: { bucket: "bkt" }, local: { path: "/b" } }),
    expect: "exactly one of s3, gcs, azure and local must be set",
  },
  {
    name: "BackupStorage with no provider",
    manifest: storage({}),
    expect: "exactly one of s3, gcs, azure and local must be set",
  },
  {
    name: "pathTemplate escaping its prefix",
    manifest: storage({ local: { path: "/b" }, pathTemplate: "../{{ .DatabaseName }}" }),
    expect: "pathTemplate must be a relative path without empty, '.' or '..' segments",
  },
  {
    name: "filenameTemplate with an unknown variable",
    manifest: backup({ filenameTemplate: "{{ .Random }}.sql.gz" }),
    expect: "filenameTemplate may only use {{ .Name }}",
  },
  {
    name: "Backup compression algorithm lz4",
    manifest: backup({ compression: { algorithm: "lz4" } }),
    expect: 'Unsupported value: "lz4"',
  },
  {
    name: "BackupSchedule verify with both every and schedule",
    manifest: verifySchedule({ every: 1, schedule: "@daily" }),
    expect: "exactly one of every and schedule must be set",
  },
  {
    name: "BackupSchedule verify with neither",
    manifest: verifySchedule({}),
    expect: "exactly one of every and schedule must be set",
  },
  {
    name: "BackupSchedule verify every 0",
    manifest: verifySchedule({ every: 0 }),
    expect: "should be greater than or equal to 1",
  },
  {
    name: "BackupSchedule verify schedule with a shell command",
    manifest: verifySchedule({ schedule: "* * * * *; rm -rf /" }),
    expect: "spec.verify.schedule",
  },
  {
    name: "Backup gzip level 10 (a zstd level)",
    manifest: backup({ compression: { level: 10 } }),
    expect: "gzip levels are 0 to 9",
  },
  {
    name: "Backup zstd level 0 (a gzip level)",
    manifest: backup({ compression: { algorithm: "zstd", level: 0 } }),
    expect: "zstd levels are 1 to 19",
  },
  {
    name: "Backup zstd level 20",
    manifest: backup({ compression: { algorithm: "zstd", level: 20 } }),
    expect: "should be less than or equal to 19",
  },
  {
    name: "BackupSchedule template with compression lz4",
    manifest: {
      apiVersion: API,
      kind: "BackupSchedule",
      metadata: { name: "bs" },
      spec: {
        schedule: "0 2 * * *",
        databaseRef: { name: "d" },
        storageRef: { name: "s" },
        compression: { algorithm: "lz4" },
      },
    },
    expect: 'Unsupported value: "lz4"',
  },
  {
    name: "Restore from a Backup and a path",
    manifest: restore({ backupRef: { name: "b" }, path: "x.sql.gz", storageRef: { name: "s" } }),
    expect: "exactly one of source.backupRef, source.latestFrom and source.path must be set",
  },
  {
    name: "Restore from a path without storageRef",
    manifest: restore({ path: "x.sql.gz" }),
    expect: "source.storageRef is required with source.path and only allowed with it",
  },
  {
    name: "PostgresDatabase named template0",
    manifest: pgdb("template0"),
    expect: "name must not be a reserved name",
  },
];

/** Each must be accepted. */
const ACCEPTED: { name: string; manifest: unknown }[] = [
  {
    name: "Backup zstd level 19",
    manifest: backup({ compression: { algorithm: "zstd", level: 19 } }),
  },
  {
    name: "Backup gzip level 0",
    manifest: backup({ compression: { algorithm: "gzip", level: 0 } }),
  },
  { name: "Backup zstd, default level", manifest: backup({ compression: { algorithm: "zstd" } }) },
  {
    name: "DBCluster from environment",
    manifest: cluster({ credentialsFromEnv: { username: "PGUSER", password: "PGPASSWORD" } }),
  },
  {
    name: "DBCluster by AWS IAM",
    manifest: cluster({
      authentication: { type: "awsIam", username: "dbtether", region: "eu-west-1" },
    }),
  },
  {
    name: "DBCluster by Azure Entra ID",
    manifest: cluster({ authentication: { type: "azureEntra", username: "dbtether-mi" } }),
  },
  { name: "username of 63 bytes in 21 characters", manifest: user({ username: u63bytes }) },
  {
    name: "username with capitals, quotes and spaces",
    manifest: user({ username: `Ab "c"; DROP ROLE x` }),
  },
  {
    name: "v0.9 database form",
    manifest: { ...user({}), spec: { database: { name: "db", privileges: "readwrite" } } },
  },
  {
    name: "v0.9 databases form, perDatabase Secrets",
    manifest: {
      ...user({}),
      spec: {
        databases: [{ name: "a" }, { name: "a", namespace: "other" }],
        secretGeneration: "perDatabase",
      },
    },
  },
  { name: "connectionLimit 1", manifest: user({ connectionLimit: 1 }) },
  {
    name: "Alternating with a 61-byte username",
    manifest: user({ username: "a".repeat(61), rotation: { days: 1, strategy: "Alternating" } }),
  },
  {
    name: "custom Secret keys",
    manifest: user({ secret: { template: "custom", keys: { password: "PW" } } }),
  },
  {
    name: "Database name with hyphen kept as written",
    manifest: database("d", { databaseName: "my-app" }),
  },
  {
    name: "BackupStorage on S3-compatible server",
    manifest: storage({
      s3: { bucket: "bkt", endpoint: "http://127.0.0.1:9000", forcePathStyle: true },
    }),
  },
  {
    name: "filenameTemplate with every variable",
    manifest: backup({
      filenameTemplate:
        "{{ .Year }}/{{.Month}}/{{ .Day }}/{{ .Namespace }}-{{ .ClusterName }}-{{ .DatabaseName }}-{{ .Timestamp }}-{{ .RunID }}.sql.gz",
    }),
  },
  { name: "Restore latest", manifest: restore({ latestFrom: { databaseRef: { name: "d" } } }) },
  {
    name: "BackupSchedule with retention",
    manifest: {
      apiVersion: API,
      kind: "BackupSchedule",
      metadata: { name: "bs" },
      spec: {
        databaseRef: { name: "d" },
        storageRef: { name: "s" },
        schedule: "0 2 * * *",
        retention: { keepLast: 7, keepDaily: 7, keepWeekly: 4, keepMonthly: 12 },
      },
    },
  },
  {
    name: "BackupSchedule with verify",
    manifest: verifySchedule({ schedule: "0 6 * * 0" }),
  },
];

Deno.test({
  name: "CRDs in a real apiserver",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using kube = await startKube();
    const ns = `crds-${crypto.randomUUID().slice(0, 8)}`;
    await kube.kubectl(["create", "namespace", ns], { check: true });

    await t.step("the dbtether README's manifests apply verbatim", async () => {
      await kube.kubectl(["create", "namespace", "postgres-operator-system"], { check: true });
      for (const block of await yamlBlocks(DBTETHER_README)) await kube.apply(block);
      const get = (what: string) => kube.kubectl(["get", what, "-A"], { check: true });
      assertEquals(
        header((await kube.kubectl(["get", "dbclusters"], { check: true })).stdout),
        ["NAME", "ENDPOINT", "PHASE", "VERSION", "AGE"],
      );
      assertEquals(
        header((await get("databases")).stdout),
        ["NAMESPACE", "NAME", "CLUSTER", "DATABASE", "PHASE", "AGE"],
      );
      assertEquals(
        header((await get("databaseusers")).stdout),
        ["NAMESPACE", "NAME", "DATABASE", "USERNAME", "PRIVILEGES", "PHASE", "AGE"],
      );
      const u = JSON.parse(
        (await kube.kubectl([
          "get",
          "databaseuser",
          "my-app-readonly",
          "-n",
          "default",
          "-o",
          "json",
        ], { check: true })).stdout,
      );
      // Server-side defaults are what the README documents.
      assertStrictEquals(u.spec.password.length, 16);
      assertStrictEquals(u.spec.connectionLimit, -1);
      assertStrictEquals(u.spec.secret.template, "raw");
    });

    await t.step("the pg-db-operator README's PostgresDatabase applies verbatim", async () => {
      const blocks = (await yamlBlocks(PG_DB_OPERATOR_README)).filter((b) =>
        b.includes("kind: PostgresDatabase")
      );
      assertStrictEquals(blocks.length, 1);
      for (const block of blocks) {
        await kube.kubectl(["apply", "-n", ns, "-f", "-"], { stdin: block, check: true });
      }
      const r = await kube.kubectl(["get", "pgdb", "-n", ns, "pg-db-test"], { check: true });
      assertEquals(header(r.stdout), ["NAME", "DATABASE", "SECRET", "PHASE", "AGE"]);
    });

    await t.step("kubectl explain describes the fields", async () => {
      const r = await kube.kubectl(["explain", "databaseusers.spec.password.length"], {
        check: true,
      });
      assertMatch(r.stdout, /Length of generated passwords/);
    });

    for (const c of REJECTED) {
      await t.step(`rejects: ${c.name}`, async () => {
        const r = await applyDryRun(kube, c.manifest, ns);
        assertNotStrictEquals(r.code, 0, `accepted: ${r.stdout}`);
        assert(r.stderr.includes(c.expect), `expected "${c.expect}" in: ${r.stderr}`);
      });
    }

    for (const c of ACCEPTED) {
      await t.step(`accepts: ${c.name}`, async () => {
        const r = await applyDryRun(kube, c.manifest, ns);
        assertStrictEquals(r.code, 0, r.stderr);
      });
    }

    await t.step("identifiers and one-shot specs are immutable", async () => {
      const apply = (m: unknown) =>
        kube.kubectl(["apply", "-n", ns, "-f", "-"], { stdin: JSON.stringify(m) });
      assertStrictEquals((await apply(database("imm", { databaseName: "one" }))).code, 0);
      const r = await apply(database("imm", { databaseName: "two" }));
      assert(r.stderr.includes("databaseName is immutable"), r.stderr);
      assertStrictEquals((await apply(backup({}))).code, 0);
      const b = await apply(backup({ format: "custom" }));
      assert(b.stderr.includes("a Backup's spec is immutable"), b.stderr);
    });
  },
});
