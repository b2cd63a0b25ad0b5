/**
 * What the install tests share (the Helm chart, the kubectl manifests, the VM recipe): a
 * kubeconfig that authenticates as a real ServiceAccount, and examples/ applied and waited on.
 *
 * ```ts
 * const kubeconfig = await serviceAccountKubeconfig(env, { namespace: ns, name: "dbtether" });
 * await applyExamples(env, { backupDir });
 * await waitExamplesReady(env);
 * ```
 */
import type { TestEnv } from "./env.ts";
import { pointReadmeAtServer } from "./seed.ts";
import { budget } from "./timeouts.ts";

const root = new URL("../../", import.meta.url).pathname;

/**
 * A kubeconfig holding a token the apiserver issued for the ServiceAccount (TokenRequest, as
 * the kubelet projects into a pod): requests authenticate as
 * `system:serviceaccount:<namespace>:<name>` with its groups, and RBAC sees exactly its grants.
 */
export async function serviceAccountKubeconfig(
  env: TestEnv,
  sa: { namespace: string; name: string },
): Promise<string> {
  const token = (await env.kube.kubectl(
    ["create", "token", sa.name, "-n", sa.namespace, "--duration", "1h"],
    { check: true },
  )).stdout.trim();
  const ca = btoa(await Deno.readTextFile(`${env.kube.dir}/ca.crt`));
  const path = `${env.kube.dir}/sa-${sa.namespace}-${sa.name}.kubeconfig`;
  await Deno.writeTextFile(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: { server: "${env.kube.server}", certificate-authority-data: ${ca} }
users:
- name: ${sa.name}
  user: { token: ${token} }
contexts:
- name: test
  context: { cluster: test, user: ${sa.name}, namespace: ${sa.namespace} }
current-context: test
`,
    { mode: 0o600 },
  );
  return path;
}

/** The examples the install tests apply (backup_s3.yaml needs an S3 server and is left out). */
export const EXAMPLE_FILES = [
  "database.yaml",
  "database_user.yaml",
  "database_user_multi.yaml",
  "database_user_rotation.yaml",
  "postgres_database.yaml",
  "backup.yaml",
] as const;

/**
 * Applies examples/ as a user would: verbatim, then the DBCluster and its admin Secret pointed
 * at the test server (as the README asks) and the local BackupStorage at `backupDir`. The
 * namespace postgres-operator-system must exist (every install path creates it).
 */
export async function applyExamples(env: TestEnv, o: { backupDir: string }): Promise<void> {
  for (const file of EXAMPLE_FILES) {
    let text = await Deno.readTextFile(`${root}examples/${file}`);
    if (file === "backup.yaml") text = text.replace("/tmp/dbtether-demo-backups", o.backupDir);
    await env.kube.apply(text);
  }
  await pointReadmeAtServer(env);
}

/**
 * Waits until every example object is in its final good phase: the server Connected, Databases,
 * users, the PostgresDatabase and the BackupStorage Ready, the Backup and the Restore
 * Completed. The program must run with `--postgresdatabase-cluster my-aurora-cluster`.
 */
export async function waitExamplesReady(env: TestEnv): Promise<void> {
  const ns = { namespace: "default" };
  await env.waitPhase("dbcluster", "my-aurora-cluster", "Connected");
  for (const db of ["my-app-db", "my-app-db-copy"]) {
    await env.waitPhase("database", db, "Ready", ns);
  }
  for (const u of ["my-app-readonly", "my-app-reporting", "my-app-migrator"]) {
    await env.waitPhase("databaseuser", u, "Ready", ns);
  }
  await env.waitPhase("postgresdatabase", "pg-db-test", "Ready", ns);
  await env.waitPhase("backupstorage", "local", "Ready");
  const slow = { ...ns, timeoutMs: budget("backup") };
  await env.waitPhase("backup", "my-app-db-manual", "Completed", slow);
  await env.waitPhase("restore", "my-app-db-restore", "Completed", slow);
}
