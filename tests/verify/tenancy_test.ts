/**
 * Tenancy (issue 13): a namespace taken off a DBCluster's and a BackupStorage's allow-lists. Two
 * tenant namespaces use one server and one storage; then the platform team removes tenant B from
 * both lists. Asserted, as a user would check it:
 *
 * - B's changes stop: a changed DatabaseUser and a new Database get `NamespaceNotAllowed` with a
 *   message, no statement naming them reaches the server after the removal, and the server keeps
 *   what B had (its database, its role with the old setting, its login);
 * - B's Backups are refused with a reason (the storage's list first, then the DBCluster's) and
 *   write nothing to the storage;
 * - A keeps working: its change is applied and its Backup completes.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { backupYaml, storageYaml, waitPhase } from "../helpers/backup.ts";
import { startEnv, type TestEnv } from "../helpers/env.ts";
import { type Obj, readyReason, runsAs, secretData } from "../helpers/fixtures.ts";
import { budget } from "../helpers/timeouts.ts";
import { waitFor } from "../helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function tenant(ns: string, db: string, limit: number): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: app, namespace: ${ns} }
spec: { clusterRef: { name: main }, databaseName: ${db}, deletionPolicy: Delete }
---
apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: svc, namespace: ${ns} }
spec:
  databaseRef: { name: app }
  username: ${db}_svc
  privileges: readwrite
  connectionLimit: ${limit}
`;
}

const allowList = (names: string[]) => `  allowedNamespaces:\n    names: [${names.join(", ")}]\n`;

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`);
      else out.push(`${d}/${e.name}`.slice(dir.length + 1));
    }
  };
  await walk(dir);
  return out.sort();
}

async function connLimit(env: TestEnv, role: string): Promise<string> {
  return (await env.pg.superSql(`SELECT rolconnlimit FROM pg_roles WHERE rolname = '${role}'`))
    .trim();
}

Deno.test(
  { name: "a namespace removed from the allow-lists stops changing", ...opts },
  async () => {
    const store = await Deno.makeTempDir({ prefix: "dbtether-tenancy-" });
    try {
      await using env = await startEnv({ pg: true, program: true });
      const a = await env.namespace("tenant-a"), b = await env.namespace("tenant-b");
      const cluster = (names: string[]) =>
        env.clusterManifest("main", { extraSpec: allowList(names) });
      const storage = (names: string[]) =>
        storageYaml("store", { localPath: store }).trimEnd() + "\n" + allowList(names);
      await env.kube.apply(cluster([a, b]));
      await env.kube.apply(storage([a, b]));
      await env.kube.apply(tenant(a, "ta_app", 5));
      await env.kube.apply(tenant(b, "tb_app", 5));
      for (const ns of [a, b]) {
        await env.waitPhase("databaseuser", "svc", "Ready", {
          namespace: ns,
          timeoutMs: budget("ready"),
        });
      }
      const bCreds = (await secretData(env, { namespace: b, name: "svc-credentials" }))!;
      const bLogin = { user: "tb_app_svc", password: bCreds.password!, database: "tb_app" };
      assert(await runsAs(env.pg, bLogin), "B logs in before");

      // The platform team takes B off the storage's list: B's next Backup is refused for that.
      await env.kube.apply(storage([a]));
      await env.kube.apply(backupYaml(b, "early", "app", "store"));
      await waitFor("B's Backup refused by the storage", async () => {
        const o = await env.getJson<Obj>("backup", "early", b);
        return /BackupStorage "store"/.test(o?.status?.message ?? "") ? o : undefined;
      }, { timeoutMs: budget("react") });
      assertEquals(
        (await env.getJson<Obj>("backup", "early", b))?.status?.phase !== "Completed",
        true,
      );
      // Then off the DBCluster's.
      await env.kube.apply(cluster([a]));
      const mark = (await env.pg.readLog()).length;

      await env.kube.apply(tenant(b, "tb_app", 9));
      await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: more, namespace: ${b} }
spec: { clusterRef: { name: main }, databaseName: tb_more, deletionPolicy: Delete }
`);
      await env.kube.apply(backupYaml(b, "nightly", "app", "store"));
      await env.kube.apply(tenant(a, "ta_app", 9));
      await env.kube.apply(backupYaml(a, "nightly", "app", "store"));

      for (const [kind, name] of [["databaseuser", "svc"], ["database", "more"]]) {
        await waitFor(`B's ${kind} ${name} refused`, async () => {
          const o = await env.getJson<Obj>(kind!, name!, b);
          return readyReason(o) === "NamespaceNotAllowed" &&
            o?.status?.observedGeneration === o?.metadata.generation;
        }, { timeoutMs: budget("react") }).catch(async (e) => {
          const o = await env.getJson<Obj>(kind!, name!, b);
          const limit = await connLimit(env, "tb_app_svc");
          throw new Error(`${(e as Error).message}: ${JSON.stringify(o?.status)}; limit ${limit}`);
        });
      }
      const bk = await waitPhase(env, "backup", "nightly", "Failed", { namespace: b }).catch(
        async () => await env.getJson<Obj>("backup", "nightly", b),
      ) as Obj | undefined;
      assert(
        /may not use DBCluster "main"/.test(bk?.status?.message ?? ""),
        `B's Backup says why it is refused: ${JSON.stringify(bk?.status)}`,
      );
      // A goes on.
      await waitFor(
        "A's change applied",
        async () => (await connLimit(env, "ta_app_svc")) === "9",
        {
          timeoutMs: budget("react"),
        },
      );
      await waitPhase(env, "backup", "nightly", "Completed", { namespace: a });

      // B's server state is as it was, and nothing of B's reached the server or the storage.
      assertEquals(await connLimit(env, "tb_app_svc"), "5", "B's role kept its old setting");
      assert(await runsAs(env.pg, bLogin), "B still logs in");
      assertEquals(
        (await env.pg.superSql("SELECT count(*) FROM pg_database WHERE datname = 'tb_more'"))
          .trim(),
        "0",
      );
      const after = (await env.pg.readLog()).slice(mark).split("\n");
      // The operator's sessions are tagged with its application_name; the test's own are psql.
      const bSql = after.filter((l) =>
        l.includes("[dbtether@") && /tb_app|tb_more/.test(l) && /statement|execute/.test(l)
      );
      assertEquals(bSql, [], "no statement about B's objects after the removal");
      const stored = await files(store);
      assert(stored.some((f) => f.includes("ta_app")), `A's backup is stored: ${stored}`);
      assertEquals(stored.filter((f) => f.includes("tb_app")), [], "nothing of B's in the storage");
    } finally {
      await Deno.remove(store, { recursive: true }).catch(() => {});
    }
  },
);
