/**
 * BackupSchedule spec.verify through the real `dbtether run` against a real apiserver,
 * PostgreSQL (admin not superuser) and MinIO, on minutely schedules side by side (as
 * backup_schedule_test.ts, which says why there is no injected clock):
 * - a good backup restores into a scratch database whose counts equal the recorded ones:
 *   Verified=True, the Backup marked, the scratch database gone, `backups list` says so;
 * - a backup whose object was overwritten in MinIO fails verification: a Warning Event, the
 *   Backup marked Failed, and retention keeps the last verified-good Backup;
 * - a hostile tenant who pre-creates a Database under the scratch name gets a failed
 *   verification and keeps that database and its data;
 * - the program SIGKILLed mid-verification: after the restart the scratch database is dropped
 *   and the Backup verified.
 */
import { createHash } from "node:crypto";
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { databaseYaml, freezeRestoreTool } from "./helpers/backup.ts";
import { conditionOf, mergePatch } from "./helpers/fixtures.ts";
import { runProgram } from "./helpers/program.ts";
import type { StorageServer } from "./helpers/storage_servers.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";
import { verifyPlacement } from "../controllers/postgres/restore_target.ts";
import {
  type BackupObj,
  backupsIn,
  type Cond,
  databasesLike,
  events,
  schedule,
  schedYaml,
  seeded,
  servers,
  suspendSettled,
  verificationAfter,
  VERIFIED,
} from "./helpers/verify.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A good backup verifies; the scratch database is gone; the CLI shows it verified. */
async function goodBackup(env: TestEnv): Promise<void> {
  const ns = await env.namespace("bkv-good");
  await seeded(env, ns, "bkv_good");
  await env.kube.apply(schedYaml(ns, "nightly", "app", "  verify:\n    every: 1\n"));
  const s = await verificationAfter(env, ns, "nightly");
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { suspend: true },
  });
  const v = s.status!.lastVerification!;
  assertEquals(v.result, "Passed", JSON.stringify(s.status));
  const cond = conditionOf(s, "Verified") as (Cond & { observedGeneration?: number }) | undefined;
  assertEquals([cond?.status, cond?.reason], ["True", "VerificationPassed"]);
  assertEquals(cond?.observedGeneration, s.metadata.generation);
  assert(cond!.message.includes("3 tables and 3503 rows"), cond!.message);
  const b = await env.getJson<BackupObj>("backup", v.backup!, ns);
  assertEquals(b?.metadata.annotations?.[VERIFIED], "Passed");
  assertEquals(b?.status?.counts?.tables, 3);
  assertEquals(b?.status?.counts?.rows, 3503);
  assertEquals(await databasesLike(env, "bkv_good_verify_"), [], "the scratch database is gone");
  // This verification's own login role: the other schedules of this test verify at the same
  // time, each with a role of its own (named from its schedule's uid).
  const { loginRole } = verifyPlacement({
    target: "bkv_good",
    owner: "bkv_good_owner",
    schedule: { namespace: ns, name: "nightly", uid: s.metadata.uid },
    database: { namespace: ns, name: "app" },
  });
  assert((await env.pg.readLog()).includes(loginRole), `no ${loginRole} in the server log`);
  const roles = await env.pg.superSql(
    `SELECT count(*) FROM pg_roles WHERE rolname = '${loginRole}'`,
  );
  assertEquals(roles.trim(), "0", `the login role ${loginRole} is gone`);
  assert((await events(env, ns)).some((e) => e.reason === "VerificationPassed"));
  const r = await runProgram([
    "backups",
    "list",
    "-n",
    ns,
    "-o",
    "json",
    "--kubeconfig",
    env.kube.kubeconfigPath,
  ]);
  assertEquals(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as { name: string; verified: boolean | null }[];
  assertEquals(rows.find((x) => x.name === v.backup)?.verified, true);
}

/**
 * The newest backup's object is overwritten in MinIO: its verification fails, the Backup is
 * marked, a Warning Event; retention (keepLast 1) keeps the older verified-good Backup.
 */
async function corruptedBackup(env: TestEnv, minio: StorageServer): Promise<void> {
  const ns = await env.namespace("bkv-bad");
  await seeded(env, ns, "bkv_bad");
  await env.kube.apply(schedYaml(
    ns,
    "nightly",
    "app",
    "  verify:\n    every: 1\n  retention:\n    keepLast: 1\n",
  ));
  const first = await verificationAfter(env, ns, "nightly");
  const good = first.status!.lastVerification!.backup!;
  assertEquals(first.status!.lastVerification!.result, "Passed");
  // No verification of the next Backups for now.
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { verify: { every: 1000 } },
  });
  await waitFor("a newer Backup completed", async () => {
    const list = await backupsIn(env, ns);
    return list.some((b) => b.metadata.name > good && b.status?.phase === "Completed");
  }, { timeoutMs: budget("bulk"), intervalMs: 1000 });
  const settled = await suspendSettled(env, ns);
  const newest = settled.filter((b) => b.status?.phase === "Completed").at(-1)!;
  assert(newest.metadata.name > good, "a newer Backup than the verified one");
  const store = minio.makeStore({ bucket: "backups" });
  try {
    await store.delete(newest.status!.path!);
    await store.put(newest.status!.path!, new Blob(["not the dump"]).stream());
  } finally {
    await store.close();
  }
  const before = Date.now();
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { verify: { every: 1 } },
  });
  const s = await verificationAfter(env, ns, "nightly", before - 1000);
  const v = s.status!.lastVerification!;
  assertEquals([v.backup, v.result], [newest.metadata.name, "Failed"], JSON.stringify(v));
  assert(/^The restore failed: .*sha256/.test(v.message ?? ""), v.message);
  const cond = conditionOf(s, "Verified") as Cond | undefined;
  assertEquals([cond?.status, cond?.reason], ["False", "VerificationFailed"]);
  const marked = await env.getJson<BackupObj>("backup", newest.metadata.name, ns);
  assertEquals(marked?.metadata.annotations?.[VERIFIED], "Failed");
  assert(
    (await events(env, ns)).some((e) => e.reason === "VerificationFailed" && e.type === "Warning"),
  );
  const left = (await backupsIn(env, ns)).map((b) => b.metadata.name);
  assert(left.includes(good), `the verified-good ${good} is kept: ${left.join(", ")}`);
  assertEquals(await databasesLike(env, "bkv_bad_verify_"), [], "the scratch database is gone");
}

/**
 * A tenant creates a Database under the scratch name (computed from the schedule's uid): the
 * verification refuses it and ends in Error; the tenant's database and its rows stay.
 */
async function hostileScratchName(env: TestEnv): Promise<void> {
  const ns = await env.namespace("bkv-host");
  await seeded(env, ns, "bkv_host");
  // Suspended until the squatter is in place (the uid exists only once the schedule does).
  await env.kube.apply(
    schedYaml(ns, "nightly", "app", "  suspend: true\n  verify:\n    every: 1\n"),
  );
  const uid = (await schedule(env, ns, "nightly"))!.metadata.uid;
  const h = createHash("sha256").update(`verify/${uid}`).digest("hex").slice(0, 8);
  const squat = `bkv_host_verify_${h}`;
  await env.kube.apply(databaseYaml(ns, "squat", squat));
  await env.waitPhase("database", "squat", "Ready", { namespace: ns });
  const w = await env.pg.psql("CREATE TABLE mine (x int); INSERT INTO mine VALUES (42);", {
    database: squat,
  });
  assertEquals(w.code, 0, w.stderr);
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { suspend: false },
  });
  const s = await verificationAfter(env, ns, "nightly");
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { suspend: true },
  });
  const v = s.status!.lastVerification!;
  // Not the backup's fault: an Error, the Backup not marked either way.
  assertEquals(v.result, "Error", JSON.stringify(v));
  assert(JSON.stringify(s.status).includes("was not made by"), JSON.stringify(s.status));
  const cond = conditionOf(s, "Verified") as Cond | undefined;
  assertEquals([cond?.status, cond?.reason], ["False", "VerificationError"]);
  const backup = await env.getJson<BackupObj>("backup", v.backup!, ns);
  assertEquals(backup?.metadata.annotations?.[VERIFIED], undefined);
  assertEquals(await databasesLike(env, "bkv_host_verify_"), [squat]);
  assertEquals((await env.pg.superSql("SELECT x FROM mine", { database: squat })).trim(), "42");
}

Deno.test({ name: "BackupSchedule verify against the real servers", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await using minio = await servers(env);
  const results = await Promise.allSettled([
    goodBackup(env),
    corruptedBackup(env, minio),
    hostileScratchName(env),
  ]);
  const names = ["a good backup passes", "a corrupted object fails", "hostile scratch name"];
  for (const [i, r] of results.entries()) {
    await t.step(names[i]!, () => {
      if (r.status === "rejected") throw r.reason;
    });
  }
});

Deno.test(
  { name: "BackupSchedule verify: a verification cut off by SIGKILL is cleaned up", ...opts },
  async () => {
    await using env = await startEnv({ pg: true, program: true });
    await using _minio = await servers(env);
    const ns = await env.namespace("bkv-kill");
    await seeded(env, ns, "bkv_kill");
    // Enough rows that the restore takes a while, so it can be caught running.
    const big = await env.pg.psql(
      "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1500000) g;",
      { database: "bkv_kill" },
    );
    assertEquals(big.code, 0, big.stderr);
    await env.kube.apply(schedYaml(ns, "nightly", "app", "  verify:\n    every: 1\n"));
    // The verification's psql, held still mid-restore.
    const psql = await freezeRestoreTool(env);
    const mid = await waitFor("status.verifying while the restore runs", async () => {
      const s = await schedule(env, ns, "nightly");
      return s?.status?.verifying ? s : undefined;
    });
    assertEquals((await databasesLike(env, "bkv_kill_verify_")).length, 1, "the scratch exists");
    await env.killProgram("SIGKILL");
    // A killed container takes its children with it; here psql outlives the program, so it
    // goes the same way (its session, a login role's, is not the admin's to end).
    try {
      Deno.kill(psql.pid, "SIGKILL");
    } catch (e) {
      // Gone already: it went down with the program.
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await env.startProgram();
    const s = await verificationAfter(env, ns, "nightly");
    await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
      spec: { suspend: true },
    });
    assertEquals(s.status?.lastVerification?.backup, mid.status!.verifying);
    assertEquals(s.status?.lastVerification?.result, "Passed", JSON.stringify(s.status));
    assertEquals(await databasesLike(env, "bkv_kill_verify_"), [], "the scratch database is gone");
  },
);
