/**
 * Backup failures through the real program: a bad admin password, pg_dump's connection killed,
 * and the program shut down mid-backup. Each ends with a specific reason (or, for the shutdown,
 * a single Completed after a retry with the same key), no object at the final key for
 * failures, and the admin password in no log, Event or status.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startEnv } from "./helpers/env.ts";
import { waitFor } from "./helpers/wait.ts";
import {
  assertNoPasswordLeak,
  backupYaml,
  databaseYaml,
  dumpConnected,
  files,
  holdLock,
  type Obj,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({ name: "Backup failures end with a reason and leave no object", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await env.kube.apply(env.clusterManifest("test-pg"));
  const dir = await Deno.makeTempDir({ prefix: "dbtether-fail-" });
  try {
    await env.kube.apply(storageYaml("local", { localPath: dir }));
    const ns = await env.namespace("bkp-fail");
    await env.kube.apply(databaseYaml(ns, "app", "fail_app"));
    await env.waitPhase("database", "app", "Ready", { namespace: ns });
    const seeded = await env.pg.psql(SEED, { database: "fail_app" });
    assertEquals(seeded.code, 0, seeded.stderr);
    const keyDir = `${dir}/test-pg/fail_app`;

    await t.step(
      "pg_dump's connection killed mid-backup → Failed DumpFailed, no object",
      async () => {
        const lock = await holdLock(env, "fail_app", "orders");
        await env.kube.apply(backupYaml(ns, "killed", "app", "local"));
        await waitPhase(env, "backup", "killed", "Running", { namespace: ns });
        await dumpConnected(env, "fail_app");
        await env.pg.superSql(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
            "WHERE datname = 'fail_app' AND application_name = 'dbtether-backup'",
        );
        const b = await waitPhase(env, "backup", "killed", "Failed", { namespace: ns });
        await lock.release();
        assertEquals(b.status?.conditions?.find((c) => c.type === "Ready")?.reason, "DumpFailed");
        assert(/terminat/i.test(b.status?.message ?? ""), String(b.status?.message));
        assertEquals(files(keyDir), []);
      },
    );

    await t.step("shut down mid-backup → retried with the same key, one Completed", async () => {
      const lock = await holdLock(env, "fail_app", "orders");
      await env.kube.apply(backupYaml(ns, "interrupted", "app", "local"));
      const running = await waitPhase(env, "backup", "interrupted", "Running", { namespace: ns });
      await dumpConnected(env, "fail_app");
      assertEquals(await env.killProgram("SIGTERM"), 0);
      const after = await env.getJson<Obj>("backup", "interrupted", ns);
      assertEquals(after?.status?.phase, "Pending");
      assertEquals(after?.status?.attempts, 1);
      assertEquals(files(keyDir), []);
      await lock.release();
      await env.startProgram();
      const done = await waitPhase(env, "backup", "interrupted", "Completed", {
        namespace: ns,
        timeoutMs: 120_000,
      });
      assertEquals(done.status?.attempts, 2);
      assertEquals(done.status?.path, running.status?.path);
      const ev = await env.kube.kubectl(["get", "events", "-n", ns, "-o", "json"]);
      const completed = (JSON.parse(ev.stdout).items as {
        reason: string;
        count?: number;
        involvedObject: { name: string };
      }[]).filter((e) => e.involvedObject.name === "interrupted" && e.reason === "Completed");
      assertEquals(completed.reduce((n, e) => n + (e.count ?? 1), 0), 1);
    });

    await t.step(
      "bad admin password → Failed DumpFailed (or waiting on the Database), no object",
      async () => {
        await env.kube.kubectl([
          "patch",
          "secret",
          "test-pg-admin",
          "-n",
          "default",
          "--type",
          "merge",
          "-p",
          JSON.stringify({ stringData: { password: "wrong-password-123" } }),
        ], { check: true });
        await env.kube.apply(backupYaml(ns, "badpw", "app", "local"));
        // Whoever notices first: pg_dump fails to log in (Failed, DumpFailed), or the Database
        // controller takes the Database out of Ready and the Backup waits, saying why.
        const b = await waitFor("the Backup to report the authentication failure", async () => {
          const o = await env.getJson<Obj>("backup", "badpw", ns);
          const phase = o?.status?.phase;
          return (phase === "Failed" || phase === "Pending") &&
              /authentication failed/i.test(o?.status?.message ?? "")
            ? o
            : undefined;
        }, { timeoutMs: 90_000 });
        const reason = b.status?.conditions?.find((c) => c.type === "Ready")?.reason;
        assertEquals(reason, b.status?.phase === "Failed" ? "DumpFailed" : "DatabaseNotReady");
        assert(!(b.status?.message ?? "").includes("wrong-password-123"));
        assertEquals(files(keyDir).filter((f) => f.includes(b.metadata.uid.slice(0, 8))), []);
      },
    );

    await t.step("the admin password appears nowhere", () => assertNoPasswordLeak(env));
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
