/** BackupSchedule manifests and the Backups they made, for the schedule tests. */
import { assertEquals } from "./assert.ts";
import type { TestEnv } from "./env.ts";

/** A BackupSchedule manifest; `spec` is its indented spec lines. */
export function scheduleYaml(ns: string, name: string, spec: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: BackupSchedule
metadata:
  name: ${name}
  namespace: ${ns}
spec:
${spec}`;
}

/** The spec of a minutely schedule of `db` into `storage`, plus `extra` lines. */
export const minutely = (db: string, storage: string, extra = "") =>
  `  databaseRef:\n    name: ${db}\n  storageRef:\n    name: ${storage}\n` +
  `  schedule: "* * * * *"\n${extra}`;

/** The Backups in `ns`, by name. */
export async function backupsIn<T extends { metadata: { name: string } }>(
  env: TestEnv,
  ns: string,
): Promise<T[]> {
  const r = await env.kube.kubectl(["get", "backups", "-n", ns, "-o", "json"]);
  assertEquals(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout).items as T[]).sort((a, b) =>
    a.metadata.name < b.metadata.name ? -1 : 1
  );
}
