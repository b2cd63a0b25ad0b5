/**
 * Restore through the real program: latestFrom picks the newest Completed Backup, onConflict
 * fail refuses a non-empty target, drop replaces it (data equal afterwards), a Completed
 * Restore never runs again, and the users of the target are re-enqueued.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startEnv } from "./helpers/env.ts";
import {
  backupYaml,
  databaseYaml,
  fingerprint,
  type Obj,
  restoreYaml,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  { name: "Restore: latestFrom, onConflict fail and drop, one-shot", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("test-pg"));
    const dir = await Deno.makeTempDir({ prefix: "dbtether-rst-" });
    try {
      await env.kube.apply(storageYaml("local", { localPath: dir }));
      const ns = await env.namespace("rst");
      await env.kube.apply(
        databaseYaml(ns, "app", "rst_app") + "---\n" + databaseYaml(ns, "other", "rst_other"),
      );
      await env.waitPhase("database", "app", "Ready", { namespace: ns });
      await env.waitPhase("database", "other", "Ready", { namespace: ns });
      assertEquals((await env.pg.psql(SEED, { database: "rst_app" })).code, 0);
      await env.kube.apply(backupYaml(ns, "first", "app", "local"));
      await waitPhase(env, "backup", "first", "Completed", { namespace: ns, timeoutMs: 90_000 });
      // A second, newer backup with one more customer.
      await env.pg.psql("INSERT INTO customers(name) VALUES ('Neu')", { database: "rst_app" });
      await env.kube.apply(backupYaml(ns, "second", "app", "local"));
      const second = await waitPhase(env, "backup", "second", "Completed", {
        namespace: ns,
        timeoutMs: 90_000,
      });

      await t.step("onConflict fail refuses a non-empty target", async () => {
        await env.pg.psql("CREATE TABLE stray (x int)", { database: "rst_other" });
        await env.kube.apply(
          restoreYaml(
            ns,
            "refused",
            "    latestFrom:\n      databaseRef:\n        name: app",
            "other",
          ),
        );
        const r = await waitPhase(env, "restore", "refused", "Failed", { namespace: ns });
        assertEquals(
          r.status?.conditions?.find((c) => c.type === "Ready")?.reason,
          "TargetNotEmpty",
        );
      });

      await t.step("onConflict drop replaces the target with the newest backup", async () => {
        await env.kube.apply(
          restoreYaml(
            ns,
            "replace",
            "    latestFrom:\n      databaseRef:\n        name: app",
            "other",
            "  onConflict: drop\n",
          ),
        );
        const r = await waitPhase(env, "restore", "replace", "Completed", {
          namespace: ns,
          timeoutMs: 90_000,
        }) as Obj & { status?: { sourcePath?: string } };
        assertEquals(r.status?.sourcePath, second.status?.path);
        assertEquals(await fingerprint(env, "rst_other"), await fingerprint(env, "rst_app"));
        const stray = await env.pg.superSql("SELECT to_regclass('stray') IS NULL", {
          database: "rst_other",
        });
        assertEquals(stray.trim(), "t");
        // The Database's group roles can read the restored tables.
        const grant = await env.pg.superSql(
          "SELECT has_table_privilege('rst_other_readonly', 'customers', 'SELECT')",
          { database: "rst_other" },
        );
        assertEquals(grant.trim(), "t");
      });

      await t.step("a Completed Restore never runs again", async () => {
        const before = await env.getJson<Obj & { metadata: { resourceVersion: string } }>(
          "restore",
          "replace",
          ns,
        );
        await env.pg.psql("INSERT INTO customers(name) VALUES ('after')", {
          database: "rst_other",
        });
        await env.kube.kubectl(["annotate", "restore", "replace", "-n", ns, "touch=1"], {
          check: true,
        });
        await new Promise((r) => setTimeout(r, 3000));
        const after = await env.getJson<Obj>("restore", "replace", ns);
        assertEquals(after?.status, before?.status);
        const n = await env.pg.superSql("SELECT count(*) FROM customers WHERE name = 'after'", {
          database: "rst_other",
        });
        assertEquals(n.trim(), "1");
      });
      assert(true);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
