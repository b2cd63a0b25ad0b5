/**
 * The program's choice of client tools with several majors installed side by side, against a
 * real PostgreSQL 16 and the real tools of scripts/install-postgres.sh: offered 18, 14 and 16 (in
 * that order), it dumps and restores with 16, the smallest major not older than the server's;
 * offered only 14 and 15, the Backup and the Restore fail with ToolTooOld, saying which major is
 * needed, which tools were found and the flag that points at others.
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { runArgs, startEnv, type TestEnv } from "./helpers/env.ts";
import {
  backupYaml,
  databaseYaml,
  fingerprint,
  restoreYaml,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { installedPostgres, type PgInstall } from "./helpers/pg_install.ts";
import { startProgram } from "./helpers/program.ts";
import { budget } from "./helpers/timeouts.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SERVER_MAJOR = 16;

type Job = {
  status?: {
    pgDumpVersion?: string;
    serverVersion?: string;
    conditions?: { type: string; reason: string; message: string }[];
  };
};

function toolsOf(major: number): PgInstall {
  const found = installedPostgres().filter((i) => i.hasClients && i.major === major).at(-1);
  if (!found) throw new Error(`Cannot find the PostgreSQL ${major} client tools installed`);
  return found;
}

/** Waits for the phase (the helper shows the status on timeout); returns the object. */
async function waitJob(env: TestEnv, o: { kind: string; ns: string; name: string; phase: string }) {
  await waitPhase(env, o.kind, o.name, o.phase, { namespace: o.ns, timeoutMs: budget("backup") });
  return (await env.getJson<Job>(o.kind, o.name, o.ns))!;
}

/** `dbtether run` offered exactly the client tools of `majors`, in that order. */
function runWithTools(env: TestEnv, majors: number[]) {
  return startProgram([
    ...runArgs(env.kube.kubeconfigPath),
    "--log-format",
    "json",
    "--backoff-base",
    "200ms",
    ...majors.flatMap((m) => ["--pg-tools-dir", toolsOf(m).binDir]),
  ]);
}

Deno.test(
  { name: "client tools: the smallest major >= the server's, else ToolTooOld", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: { major: SERVER_MAJOR } });
    assertEquals(env.pg.major, SERVER_MAJOR);
    const local = await Deno.makeTempDir({ prefix: "dbtether-tool-choice-" });
    try {
      const ns = await env.namespace("tools");
      await env.kube.apply(env.clusterManifest("test-pg"));
      await env.kube.apply(storageYaml("local", { localPath: local }));
      await env.kube.apply(
        databaseYaml(ns, "source", "tool_src") + "---\n" + databaseYaml(ns, "copy", "tool_dst") +
          "---\n" + databaseYaml(ns, "copy2", "tool_dst2"),
      );
      const t16 = toolsOf(16);

      await t.step("offered 18, 14 and 16: the backup and restore use 16", async () => {
        await using prog = await runWithTools(env, [18, 14, 16]);
        for (const db of ["source", "copy"]) {
          await waitPhase(env, "database", db, "Ready", {
            namespace: ns,
            timeoutMs: budget("ready"),
          });
        }
        const seeded = await env.pg.psql(SEED, { database: "tool_src" });
        assertEquals(seeded.code, 0, seeded.stderr);
        await env.kube.apply(backupYaml(ns, "b16", "source", "local"));
        const b = await waitJob(env, { kind: "backup", ns, name: "b16", phase: "Completed" });
        assertEquals(b.status?.pgDumpVersion?.split(".")[0], "16", JSON.stringify(b.status));
        assertEquals(b.status?.serverVersion?.split(".")[0], "16");
        await env.kube.apply(restoreYaml(ns, "r16", "    backupRef:\n      name: b16", "copy"));
        await waitPhase(env, "restore", "r16", "Completed", {
          namespace: ns,
          timeoutMs: budget("backup"),
        });
        assertEquals(await fingerprint(env, "tool_dst"), await fingerprint(env, "tool_src"));
        const started = prog.logs().split("\n").filter((l) => l.includes('"Restore started"'));
        assertEquals(started.length, 1, started.join("\n"));
        assert(started[0]!.includes(`"tool":"${t16.binDir}/psql"`), started[0]);
        assertEquals(await prog.stop(), 0);
      });

      await t.step("offered only 14 and 15: Backup and Restore fail with ToolTooOld", async () => {
        await using prog = await runWithTools(env, [14, 15]);
        await waitPhase(env, "database", "copy2", "Ready", {
          namespace: ns,
          timeoutMs: budget("ready"),
        });
        await env.kube.apply(backupYaml(ns, "b14", "source", "local"));
        await env.kube.apply(restoreYaml(ns, "r14", "    backupRef:\n      name: b16", "copy2"));
        for (const [kind, name] of [["backup", "b14"], ["restore", "r14"]] as const) {
          const o = await waitJob(env, { kind, ns, name, phase: "Failed" });
          const ready = o.status?.conditions?.find((c) => c.type === "Ready");
          assertEquals(ready?.reason, "ToolTooOld", JSON.stringify(o.status));
          const msg = ready?.message ?? "";
          assertMatch(msg, /PostgreSQL 16\.\d+: they must be of major 16 or newer/);
          for (const m of [14, 15]) assert(msg.includes(` in ${toolsOf(m).binDir}`), msg);
          assertMatch(
            msg,
            /install the PostgreSQL 16 \(or newer\) client tools and point --pg-tools-dir/,
          );
        }
        // Nothing was written by the refused backup, nor restored by the refused restore.
        const tables = await env.pg.superSql(
          "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
          { database: "tool_dst2" },
        );
        assertEquals(tables.trim(), "0");
        assertEquals(await prog.stop(), 0);
      });
    } finally {
      await Deno.remove(local, { recursive: true }).catch(() => {});
    }
  },
);
