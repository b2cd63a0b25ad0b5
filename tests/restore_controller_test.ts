/**
 * Restore through the real program: latestFrom picks the newest Completed Backup, onConflict
 * fail refuses a non-empty target, drop replaces it (data equal afterwards), restored objects
 * belong to the Database's owner role (an admin-level user can ALTER them), a Completed
 * Restore never runs again, a shutdown mid-restore leaves the target untouched and the retry
 * completes without leftovers, and the admin password appears in no log, Event or status.
 */
import { budget } from "./helpers/timeouts.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import {
  assertNoPasswordLeak,
  backupYaml,
  databaseYaml,
  fingerprint,
  freezeRestoreTool,
  type Obj,
  restoreLeftovers,
  restoreYaml,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { readyReason, secretData } from "./helpers/fixtures.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  { name: "Restore: latestFrom, onConflict fail and drop, one-shot", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("test-pg"));
    const dir = await Deno.makeTempDir({ prefix: "dbtether-rst-" });
    const stoppedLogs: string[] = [];
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
      await waitPhase(env, "backup", "first", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
      });
      // A second, newer backup with one more customer.
      await env.pg.psql("INSERT INTO customers(name) VALUES ('Neu')", { database: "rst_app" });
      await env.kube.apply(backupYaml(ns, "second", "app", "local"));
      const second = await waitPhase(env, "backup", "second", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
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
        await assertNoPasswordLeak(env);
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
          timeoutMs: budget("backup"),
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

      await t.step(
        "restored objects belong to the owner role; an admin user ALTERs them",
        async () => {
          const owners = await env.pg.superSql(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n " +
              "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r','S','v')",
            { database: "rst_other" },
          );
          assertEquals(owners.trim(), "rst_other_owner");
          await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: other-admin, namespace: ${ns} }
spec:
  database: { name: other, privileges: admin }
`);
          await env.waitPhase("databaseuser", "other-admin", "Ready", { namespace: ns });
          const c = (await secretData(env, { namespace: ns, name: "other-admin-credentials" })) ??
            {};
          const login = { user: c.username!, password: c.password!, database: "rst_other" };
          for (
            const sql of [
              "ALTER TABLE customers ADD COLUMN loyalty int",
              'ALTER TABLE "Grüße" RENAME COLUMN gruss TO greeting',
              "CREATE OR REPLACE VIEW big_orders AS SELECT o.id, c.name FROM orders o " +
              "JOIN customers c ON c.id = o.customer_id WHERE o.amount > 2000",
              "ALTER SEQUENCE counter_seq RESTART WITH 5000",
            ]
          ) {
            const r = await env.pg.psql(sql, login);
            assertEquals(r.code, 0, `${sql}: ${r.stderr}`);
          }
        },
      );

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

      await t.step(
        "shut down mid-restore → nothing in the target, retried, Completed",
        async () => {
          await env.kube.apply(databaseYaml(ns, "third", "rst_third"));
          await env.waitPhase("database", "third", "Ready", { namespace: ns });
          await env.kube.apply(
            restoreYaml(ns, "midway", "    backupRef:\n      name: first", "third"),
          );
          // psql holds still mid-restore (stopped), in the scratch database.
          const psql = await freezeRestoreTool(env);
          const stopped = env.program!;
          assertEquals(await env.killProgram("SIGTERM"), 0);
          psql.resume();
          stoppedLogs.push(stopped.logs());
          await assertNoPasswordLeak(env, { logs: stoppedLogs });
          const after = await env.getJson<Obj>("restore", "midway", ns);
          assertEquals(after?.status?.phase, "Pending");
          assertEquals(after?.status?.attempts, 1);
          assertEquals(readyReason(after), "Interrupted");
          // The target never saw any of it.
          const left = await env.pg.superSql(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
              "WHERE n.nspname = 'public'",
            { database: "rst_third" },
          );
          assertEquals(left.trim(), "0");
          await env.startProgram();
          const done = await waitPhase(env, "restore", "midway", "Completed", {
            namespace: ns,
            timeoutMs: budget("backup"),
          });
          assertEquals(done.status?.attempts, 2);
          const n = await env.pg.superSql("SELECT count(*) FROM customers", {
            database: "rst_third",
          });
          assertEquals(n.trim(), "500");
          await waitFor(
            "no leftovers of the restores",
            async () => (await restoreLeftovers(env)).length === 0,
          );
        },
      );

      await t.step(
        "the admin password appears nowhere",
        () => assertNoPasswordLeak(env, { logs: stoppedLogs }),
      );
      assert(true);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
