/**
 * More of BackupSchedule spec.verify through the real `dbtether run`, PostgreSQL (admin not
 * superuser) and MinIO, on minutely schedules side by side (as backup_verify_test.ts):
 * - `verify.schedule` (cron, no `every`): the first verification waits for its slot although
 *   Backups completed before it;
 * - a real restore that loses rows while exiting cleanly (a CHECK constraint whose function
 *   deletes a table loaded before it) fails verification with a count mismatch naming that
 *   table: a Warning Event, the Backup marked, retention keeps the older verified-good Backup;
 * - the verification metrics on /metrics after the Passed and after the Failed verification.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { conditionOf, mergePatch } from "./helpers/fixtures.ts";
import { freePort } from "./helpers/free_port.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";
import {
  type BackupObj,
  backupsIn,
  type Cond,
  databasesLike,
  events,
  schedYaml,
  seeded,
  servers,
  suspendSettled,
  type Verification,
  verificationAfter,
  VERIFIED,
} from "./helpers/verify.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const suspend = (env: TestEnv, ns: string, spec: Record<string, unknown>) =>
  mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, { spec });

/**
 * `verify.schedule` on a cron slot three minutes ahead: the minutely Backups before it are not
 * verified; the first verification ends at or after the slot and verifies the newest Backup.
 */
async function cronVerification(env: TestEnv): Promise<void> {
  const ns = await env.namespace("bkv-cron");
  await seeded(env, ns, "bkv_cron");
  const slot = (Math.floor(Date.now() / 60_000) + 3) * 60_000;
  const minute = new Date(slot).getUTCMinutes();
  await env.kube.apply(
    schedYaml(ns, "nightly", "app", `  verify:\n    schedule: "${minute} * * * *"\n`),
  );
  const s = await verificationAfter(env, ns, "nightly");
  await suspend(env, ns, { suspend: true });
  const v = s.status!.lastVerification!;
  assertEquals(v.result, "Passed", JSON.stringify(v));
  assert(Date.parse(v.time!) >= slot, `verified at ${v.time}, before the slot ${new Date(slot)}`);
  const list = await backupsIn(env, ns);
  const early = list.filter((b) =>
    b.status?.phase === "Completed" && Date.parse(b.status.completedAt ?? "") < slot
  );
  assert(early.length > 0, "a Backup completed before the verification slot");
  for (const b of list) {
    const at = b.metadata.annotations?.["dbtether.io/verified-at"];
    if (at) assert(Date.parse(at) >= slot, `${b.metadata.name} verified at ${at}, before the slot`);
  }
  assertEquals(list.filter((b) => b.metadata.annotations?.[VERIFIED]).map((b) => b.metadata.name), [
    v.backup,
  ]);
  assert(v.backup! >= early.at(-1)!.metadata.name, `${v.backup} is not the newest Backup`);
}

/** The series of `/metrics` by name and labels, e.g. `x{a="1",b="2"}` → its value. */
async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await res.text();
  assert(res.ok, text);
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, k, v]) => `${k}=${v}`).sort().join(",");
    out.set(`${m[1]}{${labels}}`, Number(m[3]));
  }
  return out;
}

/** The verification series of schedule `ns`/nightly, `result` or none. */
function verifyMetrics(all: Map<string, number>, ns: string) {
  const key = (name: string, result?: string) =>
    `dbtether_backup_schedule_${name}{namespace=${ns},${
      result ? `result=${result},` : ""
    }schedule=nightly}`;
  return {
    total: (result: string) => all.get(key("verifications_total", result)),
    at: (result: string) => all.get(key("last_verification_timestamp_seconds", result)),
    duration: all.get(key("last_verification_duration_seconds")),
  };
}

/** The metric's end time is the status time, which has whole seconds. */
function assertEndedAt(metric: number | undefined, v: Verification): void {
  const status = Date.parse(v.time!) / 1000;
  assert(metric !== undefined && metric >= status && metric < status + 1, `${metric} vs ${v.time}`);
}

/** "788ms", "12s", "1m5s", "1h2m" (humanDuration) in seconds. */
function seconds(d: string): number {
  const ms = /^(\d+)ms$/.exec(d);
  if (ms) return Number(ms[1]) / 1000;
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(d);
  assert(m, `duration ${d}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

// ledger's CHECK deletes every row of accounts. In the source ledger was filled first, so
// accounts keeps its rows; a restore loads accounts first (data in name order), then ledger,
// and each ledger row empties accounts. psql exits cleanly: only the counts tell.
const TRAP = `
CREATE FUNCTION purge_accounts() RETURNS boolean LANGUAGE plpgsql
  AS $$ BEGIN DELETE FROM public.accounts; RETURN true; END $$;
CREATE TABLE accounts (id int PRIMARY KEY);
CREATE TABLE ledger (id int PRIMARY KEY, CHECK (purge_accounts()));
INSERT INTO ledger SELECT generate_series(1, 10);
INSERT INTO accounts SELECT generate_series(1, 20);
`;

/**
 * A verified-good Backup, then the trap tables, a newer Backup of them whose verification
 * Fails on the counts of accounts; the metrics after each; retention (keepLast 1) then deletes
 * the failed Backup and keeps the verified-good one.
 */
async function countMismatch(env: TestEnv, port: number): Promise<void> {
  const ns = await env.namespace("bkv-lost");
  await seeded(env, ns, "bkv_lost");
  assertEquals(verifyMetrics(await scrape(port), ns).total("Passed"), undefined);
  await env.kube.apply(schedYaml(
    ns,
    "nightly",
    "app",
    "  verify:\n    every: 1\n  retention:\n    keepLast: 1\n",
  ));
  const first = (await verificationAfter(env, ns, "nightly")).status!.lastVerification!;
  assertEquals(first.result, "Passed", JSON.stringify(first));
  const good = first.backup!;
  await suspend(env, ns, { verify: { every: 1000 } });
  let m = verifyMetrics(await scrape(port), ns);
  assertEquals([m.total("Passed"), m.total("Failed"), m.total("Error")], [1, undefined, undefined]);
  assertEndedAt(m.at("Passed"), first);
  assert(Math.abs(m.duration! - seconds(first.duration!)) < 1, `${m.duration} ${first.duration}`);

  const trap = await env.pg.psql(TRAP, { database: "bkv_lost" });
  assertEquals(trap.code, 0, trap.stderr);
  const rows = 3503 + 30;
  await waitFor("a Backup of the trap tables", async () => {
    const list = await backupsIn(env, ns);
    return list.some((b) => b.status?.phase === "Completed" && b.status.counts?.rows === rows);
  }, { timeoutMs: budget("bulk"), intervalMs: 1000 });
  const settled = await suspendSettled(env, ns);
  const bad = settled.filter((b) => b.status?.phase === "Completed").at(-1)!;
  assertEquals([bad.status?.counts?.tables, bad.status?.counts?.rows], [5, rows]);

  const before = Date.now();
  await suspend(env, ns, { verify: { every: 1 } });
  const s = await verificationAfter(env, ns, "nightly", before - 1000);
  const v = s.status!.lastVerification!;
  assertEquals([v.backup, v.result], [bad.metadata.name, "Failed"], JSON.stringify(v));
  assertEquals(
    v.message,
    `The restore holds 5 tables and ${rows - 20} rows, the backup recorded 5 tables and ` +
      `${rows} rows: "public"."accounts" has 0 rows, not 20`,
  );
  const cond = conditionOf(s, "Verified") as Cond | undefined;
  assertEquals([cond?.status, cond?.reason], ["False", "VerificationFailed"]);
  const marked = await env.getJson<BackupObj>("backup", bad.metadata.name, ns);
  assertEquals(marked?.metadata.annotations?.[VERIFIED], "Failed");
  const warning = (await events(env, ns)).find((e) => e.reason === "VerificationFailed");
  assertEquals(warning?.type, "Warning");
  assert(warning!.message.includes(`"public"."accounts" has 0 rows, not 20`), warning!.message);
  assertEquals(await databasesLike(env, "bkv_lost_verify_"), [], "the scratch database is gone");
  m = verifyMetrics(await scrape(port), ns);
  assertEquals([m.total("Passed"), m.total("Failed"), m.total("Error")], [1, 1, undefined]);
  assertEndedAt(m.at("Failed"), v);
  assertEndedAt(m.at("Passed"), first);

  // One more Backup, unverified: its retention keeps it and the verified-good one, not `bad`.
  await suspend(env, ns, { suspend: false, verify: { every: 1000 } });
  const left = await waitFor("retention after a newer Backup", async () => {
    const list = await backupsIn(env, ns);
    const newer = list.some((b) =>
      b.metadata.name > bad.metadata.name && b.status?.phase === "Completed"
    );
    return newer && !list.some((b) => b.metadata.name === bad.metadata.name) && list;
  }, { timeoutMs: budget("bulk"), intervalMs: 1000 });
  await suspend(env, ns, { suspend: true });
  const names = left.map((b) => b.metadata.name);
  assert(names.includes(good), `the verified-good ${good} is kept: ${names.join(", ")}`);
}

Deno.test({ name: "BackupSchedule verify: cron, a lossy restore, metrics", ...opts }, async (t) => {
  const port = freePort();
  await using env = await startEnv({
    pg: true,
    program: true,
    programArgs: ["--metrics-bind-address", `127.0.0.1:${port}`],
  });
  await using _minio = await servers(env);
  const results = await Promise.allSettled([cronVerification(env), countMismatch(env, port)]);
  const names = ["verify.schedule drives it", "a lossy restore fails on its counts; metrics"];
  for (const [i, r] of results.entries()) {
    await t.step(names[i]!, () => {
      if (r.status === "rejected") throw r.reason;
    });
  }
});
