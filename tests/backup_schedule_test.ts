/**
 * BackupSchedules through the real `dbtether run` against a real apiserver, PostgreSQL (admin
 * not superuser) and MinIO. The schedules run every minute (`* * * * *`): there is no clock to
 * inject into the program, so the scenarios run side by side in their own namespaces and share
 * the same minutes. Each waits for an outcome a user would check (Backups in the API, objects in
 * the bucket, status, Events), never for a fixed time.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { databaseYaml, dumpConnected, holdLock, SEED, storageYaml } from "./helpers/backup.ts";
import { mergePatch, readyOf } from "./helpers/fixtures.ts";
import { runProgram } from "./helpers/program.ts";
import { holder, startReplica } from "./helpers/replicas.ts";
import { startMinio, type StorageServer } from "./helpers/storage_servers.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";
import { backupsIn as backupsOf, minutely, scheduleYaml } from "./helpers/schedules.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SLOT_NAME = /^[a-z0-9-]+-\d{8}-\d{4}$/;
const SLOT_ANNOTATION = "dbtether.io/scheduled-at";

type Cond = { type: string; status: string; reason: string; message: string };
type BackupObj = {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    creationTimestamp: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[];
  };
  spec: Record<string, unknown>;
  status?: { phase?: string; path?: string; conditions?: Cond[] };
};
type ScheduleObj = {
  metadata: { name: string; uid: string };
  status?: {
    phase?: string;
    lastBackup?: string;
    lastBackupTime?: string;
    lastSuccessfulBackup?: string;
    lastFailedBackup?: string;
    nextScheduledTime?: string;
    managedBackups?: number;
    retention?: {
      appliedAfter?: string;
      deletedTotal?: number;
      lastDeleted?: string[];
      wouldDelete?: string[];
    };
    conditions?: Cond[];
  };
};

const backupsIn = (env: TestEnv, ns: string) => backupsOf<BackupObj>(env, ns);

const schedule = (env: TestEnv, ns: string, name: string) =>
  env.getJson<ScheduleObj>("backupschedule", name, ns);

async function eventReasons(env: TestEnv, ns: string, kind: string): Promise<string[]> {
  const r = await env.kube.kubectl(["get", "events", "-n", ns, "-o", "json"]);
  return (JSON.parse(r.stdout).items as { reason: string; involvedObject: { kind: string } }[])
    .filter((e) => e.involvedObject.kind === kind).map((e) => e.reason);
}

/** Keys under `prefix` in the MinIO bucket. */
async function stored(minio: StorageServer, prefix: string): Promise<string[]> {
  const store = minio.makeStore({ bucket: "backups" });
  try {
    return (await store.list(prefix)).map((o) => o.key).sort();
  } finally {
    await store.close();
  }
}

async function database(env: TestEnv, ns: string, dbName: string): Promise<void> {
  await env.kube.apply(databaseYaml(ns, "app", dbName));
  await env.waitPhase("database", "app", "Ready", { namespace: ns });
  const seeded = await env.pg.psql(SEED, { database: dbName });
  assertEquals(seeded.code, 0, seeded.stderr);
}

/**
 * Three slots with keepLast 2: a Backup per slot, named after it, completes; retention leaves
 * exactly the two newest, in the API and in the bucket. Then suspend: a slot passes (the
 * schedule's status shows it reconciled after it) and no Backup is made for it.
 */
async function slotsAndRetention(env: TestEnv, minio: StorageServer): Promise<void> {
  const ns = await env.namespace("bks-ret");
  await database(env, ns, "bks_ret");
  await env.kube.apply(
    scheduleYaml(ns, "nightly", minutely("app", "minio", "  retention:\n    keepLast: 2\n")),
  );
  const completedSeen = new Set<string>();
  const done = await waitFor("three slots backed up and retention applied", async () => {
    const list = await backupsIn(env, ns);
    for (const b of list) if (b.status?.phase === "Completed") completedSeen.add(b.metadata.name);
    return completedSeen.size >= 3 && list.length < completedSeen.size;
  }, { timeoutMs: budget("bulk"), intervalMs: 1000 }).then(() => schedule(env, ns, "nightly"));
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { suspend: true },
  });
  // A Backup created just before the suspension still finishes, and retention follows it.
  const left = await waitFor("every Backup finished and retention applied after it", async () => {
    const list = await backupsIn(env, ns);
    for (const b of list) if (b.status?.phase === "Completed") completedSeen.add(b.metadata.name);
    const s = await schedule(env, ns, "nightly");
    const finished = list.every((b) => b.status?.phase === "Completed");
    const applied = s?.status?.retention?.appliedAfter === [...completedSeen].sort().at(-1);
    return finished && applied && list.length === 2 && list;
  }, { timeoutMs: budget("backup") });
  assertEquals(
    left.map((b) => b.metadata.name),
    [...completedSeen].sort().slice(-2),
    "the two newest stay",
  );
  for (const b of left) {
    assert(SLOT_NAME.test(b.metadata.name), b.metadata.name);
    const slot = Date.parse(b.metadata.annotations?.[SLOT_ANNOTATION] ?? "");
    const stamp = new Date(slot).toISOString().replace(/[-:]/g, "").slice(0, 13);
    assertEquals(b.metadata.name, `nightly-${stamp.slice(0, 8)}-${stamp.slice(9, 13)}`);
    assert(Date.parse(b.metadata.creationTimestamp) - slot < budget("react"), "on time");
    assertEquals(b.metadata.labels?.["dbtether.io/schedule"], "nightly");
    assertEquals(b.metadata.labels?.["dbtether.io/schedule-namespace"], ns);
    assertEquals(b.metadata.ownerReferences?.[0]?.uid, done?.metadata.uid);
  }
  const keys = left.flatMap((b) => [b.status!.path!, `${b.status!.path!}.manifest.json`]).sort();
  assertEquals(await stored(minio, "test-pg/bks_ret/"), keys, "exactly the kept dumps stored");
  const final = await schedule(env, ns, "nightly");
  assert((final?.status?.retention?.deletedTotal ?? 0) >= 1);
  assert((await eventReasons(env, ns, "BackupSchedule")).includes("RetentionDeleted"));

  const suspended = await waitFor("phase Suspended", async () => {
    const s = await schedule(env, ns, "nightly");
    return s?.status?.phase === "Suspended" && s;
  });
  const after = Date.parse(suspended.status!.nextScheduledTime!);
  await waitFor("a reconcile after the next slot while suspended", async () => {
    const s = await schedule(env, ns, "nightly");
    return Date.parse(s?.status?.nextScheduledTime ?? "") > after;
  }, { timeoutMs: budget("backup") });
  assertEquals(
    (await backupsIn(env, ns)).map((b) => b.metadata.name),
    left.map((b) => b.metadata.name),
    "no Backup while suspended",
  );
  const cols = await env.kube.kubectl(["get", "bks", "nightly", "-n", ns]);
  assert(/DATABASE\s+SCHEDULE\s+PHASE\s+LAST BACKUP\s+NEXT\s+AGE/.test(cols.stdout), cols.stdout);
  assert(/app\s+\* \* \* \* \*\s+Suspended/.test(cols.stdout), cols.stdout);
  await byHand(env, minio, { ns, kept: left });
}

/**
 * dryRun in the spec reports and deletes nothing; `dbtether backups list` shows the rule that
 * keeps each Backup; `backups forget --dry-run` lists, `--yes` deletes from API and bucket.
 */
async function byHand(
  env: TestEnv,
  minio: StorageServer,
  o: { ns: string; kept: BackupObj[] },
): Promise<void> {
  const { ns } = o;
  const [older, newer] = o.kept.map((b) => b.metadata.name);
  const cli = async (...args: string[]) => {
    const r = await runProgram(["backups", ...args, "--kubeconfig", env.kube.kubeconfigPath]);
    assertEquals(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const rows = await cli("list", "-n", ns, "-o", "json");
  assertEquals(rows.map((r: { name: string; keptBy: string[] }) => [r.name, r.keptBy]), [
    [newer, ["last"]],
    [older, ["last"]],
  ]);
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { retention: { keepLast: 1, dryRun: true } },
  });
  await waitFor("status.retention.wouldDelete", async () => {
    const s = await schedule(env, ns, "nightly");
    return JSON.stringify(s?.status?.retention?.wouldDelete) === JSON.stringify([older]);
  });
  assert((await eventReasons(env, ns, "BackupSchedule")).includes("RetentionDryRun"));
  assertEquals((await backupsIn(env, ns)).length, 2, "dryRun deletes nothing");
  const dry = await cli("forget", "-n", ns, "--schedule", "nightly", "--dry-run", "-o", "json");
  assertEquals(dry.backups, [{ backup: older, deleted: false }]);
  assertEquals((await backupsIn(env, ns)).length, 2, "--dry-run deletes nothing");
  const yes = await cli("forget", "-n", ns, "--schedule", "nightly", "--yes", "-o", "json");
  assertEquals(yes.backups, [{ backup: older, deleted: true }]);
  const left = await backupsIn(env, ns);
  assertEquals(left.map((b) => b.metadata.name), [newer]);
  const path = left[0]!.status!.path!;
  assertEquals(await stored(minio, "test-pg/bks_ret/"), [path, `${path}.manifest.json`]);
}

/**
 * keepLast 1 and a fixed filename: the first slot completes, the second fails (its key is
 * taken). The failure is reported and deletes nothing: the one good backup stays.
 */
async function failedBackupDeletesNothing(env: TestEnv, minio: StorageServer): Promise<void> {
  const ns = await env.namespace("bks-fail");
  await database(env, ns, "bks_fail");
  await env.kube.apply(scheduleYaml(
    ns,
    "fixed",
    minutely(
      "app",
      "minio",
      '  filenameTemplate: "fixed.sql.gz"\n  retention:\n    keepLast: 1\n',
    ),
  ));
  const s = await waitFor("a completed and then a failed Backup", async () => {
    const s = await schedule(env, ns, "fixed");
    return s?.status?.lastFailedBackup && s.status.lastSuccessfulBackup ? s : undefined;
  }, { timeoutMs: budget("bulk"), intervalMs: 1000 });
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "fixed" }, {
    spec: { suspend: true },
  });
  const good = await env.getJson<BackupObj>("backup", s.status!.lastSuccessfulBackup!, ns);
  assertEquals(good?.status?.phase, "Completed", "the good backup is still there");
  const failed = await env.getJson<BackupObj>("backup", s.status!.lastFailedBackup!, ns);
  assertEquals(readyOf(failed)?.reason, "ObjectExists");
  assertEquals(await stored(minio, "test-pg/bks_fail/"), [
    "test-pg/bks_fail/fixed.sql.gz",
    "test-pg/bks_fail/fixed.sql.gz.manifest.json",
  ]);
  assertEquals(s.status?.retention?.deletedTotal ?? 0, 0);
  assert((await eventReasons(env, ns, "BackupSchedule")).includes("BackupFailed"));
}

/**
 * The program is SIGKILLed while the slot's Backup runs (pg_dump waits on a lock) and started
 * again: the slot still has exactly one Backup, which completes.
 */
async function killedMidSlot(env: TestEnv): Promise<void> {
  const ns = await env.namespace("bks-kill");
  await database(env, ns, "bks_kill");
  const lock = await holdLock(env, "bks_kill", "orders");
  await env.kube.apply(scheduleYaml(ns, "kill", minutely("app", "minio")));
  let running: BackupObj | undefined;
  try {
    running = await waitFor("the slot's Backup to run", async () => {
      const b = (await backupsIn(env, ns)).find((b) => b.status?.phase === "Running");
      return b;
    }, { timeoutMs: budget("backup") });
    await dumpConnected(env, "bks_kill");
    await env.killProgram("SIGKILL");
    await env.startProgram();
  } finally {
    await lock.release();
  }
  const slot = running!.metadata.annotations?.[SLOT_ANNOTATION];
  await env.waitPhase("backup", running!.metadata.name, "Completed", {
    namespace: ns,
    timeoutMs: budget("failover") + budget("backup"),
  });
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "kill" }, {
    spec: { suspend: true },
  });
  const forSlot = (await backupsIn(env, ns)).filter((b) =>
    b.metadata.annotations?.[SLOT_ANNOTATION] === slot
  );
  assertEquals(forSlot.map((b) => b.metadata.uid), [running!.metadata.uid], "one Backup per slot");
}

/**
 * A tenant's schedules with any string in any field: admission refuses what it can, the
 * controller reports the rest, and nothing outside the tenant's namespace changes.
 */
async function hostileTenant(env: TestEnv): Promise<void> {
  const victim = await env.namespace("bks-victim");
  const ns = await env.namespace("bks-evil");
  await env.kube.apply(databaseYaml(victim, "app", "bks_victim"));
  await env.waitPhase("database", "app", "Ready", { namespace: victim });
  const before = JSON.stringify(await backupsIn(env, victim));

  for (const [field, value] of [["schedule", "* * * * *; rm -rf /"], ["timeZone", "../../x"]]) {
    const y = scheduleYaml(
      ns,
      "refused",
      minutely("app", "minio").replace(
        '  schedule: "* * * * *"\n',
        field === "schedule"
          ? `  schedule: ${JSON.stringify(value)}\n`
          : `  schedule: "* * * * *"\n  timeZone: ${JSON.stringify(value)}\n`,
      ),
    );
    const r = await env.kube.kubectl(["apply", "-f", "-"], { stdin: y });
    assert(r.code !== 0 && /spec\.(schedule|timeZone)/.test(r.stderr), r.stderr);
  }

  await env.kube.apply([
    scheduleYaml(ns, "badcron", minutely("app", "minio").replace("* * * * *", "0 25 * * *")),
    scheduleYaml(ns, "badtz", minutely("app", "minio", "  timeZone: Mars/Olympus\n")),
    scheduleYaml(ns, "private", minutely("app", "minio-private")),
    scheduleYaml(ns, "elsewhere", minutely("app", "minio")),
    scheduleYaml(ns, "x".repeat(70), minutely("nope", "minio")),
  ].join("---\n"));
  const refused = async (name: string, reason: string) => {
    const s = await waitFor(`${name}: Ready=False ${reason}`, async () => {
      const s = await schedule(env, ns, name);
      return readyOf(s)?.reason === reason && s;
    }, { timeoutMs: budget("backup") });
    assertEquals(s.status?.phase, "Failed");
    return readyOf(s)!.message;
  };
  assert(/hour/.test(await refused("badcron", "InvalidSchedule")));
  assert(/Mars\/Olympus/.test(await refused("badtz", "InvalidSchedule")));
  await refused("private", "NamespaceNotAllowed");

  // "elsewhere" names a Database that exists only in the victim's namespace: its Backups are
  // made in the tenant's namespace and wait for a Database there.
  const own = await waitFor("the tenant's Backups", async () => {
    const list = await backupsIn(env, ns);
    const long = list.find((b) => b.metadata.name.startsWith("xxxx"));
    const elsewhere = list.find((b) => b.metadata.name.startsWith("elsewhere-"));
    return long && elsewhere && readyOf(elsewhere)?.reason === "DatabaseNotFound" &&
      { long, elsewhere };
  }, { timeoutMs: budget("backup") });
  assert(own.long.metadata.name.length <= 63, own.long.metadata.name);
  assert(/^x{40}-[0-9a-f]{8}-\d{8}-\d{4}$/.test(own.long.metadata.name), own.long.metadata.name);
  assertEquals(
    own.long.metadata.labels?.["dbtether.io/schedule"],
    own.long.metadata.name.slice(0, 49),
  );

  await squatted(env, ns);
  assertEquals(JSON.stringify(await backupsIn(env, victim)), before, "victim unchanged");
  const all = await env.kube.kubectl(["get", "backups", "-A", "-o", "json"]);
  for (const b of JSON.parse(all.stdout).items as BackupObj[]) {
    if (b.metadata.labels?.["dbtether.io/schedule-namespace"] === ns) {
      assertEquals(b.metadata.namespace, ns, "a tenant's schedule wrote only in its namespace");
    }
  }
}

/** A Backup already named like the next slots, not the schedule's: refused, left alone. */
async function squatted(env: TestEnv, ns: string): Promise<void> {
  const now = Date.now();
  const stamps = [1, 2, 3].map((i) => {
    const iso = new Date(Math.floor(now / 60_000) * 60_000 + i * 60_000).toISOString();
    return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${
      iso.slice(14, 16)
    }`;
  });
  await env.kube.apply(
    stamps.map((s) =>
      `apiVersion: dbtether.io/v1alpha1\nkind: Backup\nmetadata:\n  name: squat-${s}\n` +
      `  namespace: ${ns}\nspec:\n  databaseRef:\n    name: nope\n  storageRef:\n    name: minio\n`
    ).join("---\n"),
  );
  const squats = () =>
    backupsIn(env, ns).then((l) => l.filter((b) => b.metadata.name.startsWith("squat-")));
  const before = JSON.stringify((await squats()).map((b) => [b.metadata, b.spec]));
  await env.kube.apply(scheduleYaml(ns, "squat", minutely("app", "minio")));
  const s = await waitFor("squat: SlotNameTaken", async () => {
    const s = await schedule(env, ns, "squat");
    return readyOf(s)?.reason === "SlotNameTaken" && s;
  }, { timeoutMs: budget("backup") });
  assertEquals(s.status?.managedBackups ?? 0, 0);
  const after = (await squats()).map((b) => [b.metadata, b.spec]);
  assertEquals(
    JSON.stringify(after.map(([m]) => (m as BackupObj["metadata"]).ownerReferences ?? [])),
    JSON.stringify([[], [], []]),
    "never adopted",
  );
  assertEquals(
    JSON.stringify(after.map(([m, spec]) => [(m as BackupObj["metadata"]).uid, spec])),
    JSON.stringify(
      JSON.parse(before).map(([m, spec]: [BackupObj["metadata"], unknown]) => [m.uid, spec]),
    ),
  );
}

Deno.test({ name: "BackupSchedule against the real servers", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await using minio = await startMinio();
  await minio.createBucket("backups");
  await env.kube.apply(env.clusterManifest("test-pg"));
  await env.kube.apply(storageYaml("minio", { server: minio }));
  await env.kube.apply(
    storageYaml("minio-private", { server: minio }) + "  allowedNamespaces:\n    names: [nobody]\n",
  );
  await env.waitPhase("backupstorage", "minio", "Ready");
  // Side by side, so that they share the minutes; each throws with its own message.
  const results = await Promise.allSettled([
    slotsAndRetention(env, minio),
    failedBackupDeletesNothing(env, minio),
    killedMidSlot(env),
    hostileTenant(env),
  ]);
  const names = ["slots and retention", "a failed backup", "killed mid-slot", "hostile tenant"];
  for (const [i, r] of results.entries()) {
    await t.step(names[i]!, () => {
      if (r.status === "rejected") throw r.reason;
    });
  }
});

Deno.test(
  { name: "BackupSchedule: a leader killed mid-backup, one Backup per slot", ...opts },
  async () => {
    await using env = await startEnv({ pg: true });
    await using minio = await startMinio();
    await minio.createBucket("backups");
    await env.kube.apply(env.clusterManifest("test-pg"));
    await env.kube.apply(storageYaml("minio", { server: minio }));
    const lease = ["--lease-duration", "8s", "--renew-deadline", "5s", "--retry-period", "1s"];
    const replicas = [await startReplica(env, { lease }), await startReplica(env, { lease })];
    await using _a = replicas[0]!.program;
    await using _b = replicas[1]!.program;
    await env.waitPhase("backupstorage", "minio", "Ready");
    const ns = await env.namespace("bks-ha");
    await database(env, ns, "bks_ha");
    const lock = await holdLock(env, "bks_ha", "orders");
    let running: BackupObj;
    try {
      await env.kube.apply(scheduleYaml(ns, "ha", minutely("app", "minio")));
      running = await waitFor("the slot's Backup to run", async () => {
        return (await backupsIn(env, ns)).find((b) => b.status?.phase === "Running");
      }, { timeoutMs: budget("backup") });
      await dumpConnected(env, "bks_ha");
      const h = await holder(env);
      const leader = replicas.find((r) => r.identity === h);
      assert(leader, `the lease holder ${h} is one of the replicas`);
      await leader.program.stop("SIGKILL");
      const standby = replicas.find((r) => r !== leader)!;
      await waitFor(
        "the standby to take the lease",
        async () => (await holder(env)) === standby.identity,
        {
          timeoutMs: budget("failover"),
        },
      );
    } finally {
      await lock.release();
    }
    await env.waitPhase("backup", running.metadata.name, "Completed", {
      namespace: ns,
      timeoutMs: budget("failover") + budget("backup"),
    });
    // The new leader also makes the next slots, one Backup each.
    await waitFor("a Backup of a later slot made by the new leader", async () => {
      const list = await backupsIn(env, ns);
      return list.some((b) =>
        b.metadata.name > running.metadata.name && b.status?.phase === "Completed"
      );
    }, { timeoutMs: budget("backup") + budget("failover") });
    await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "ha" }, {
      spec: { suspend: true },
    });
    const slots = (await backupsIn(env, ns)).map((b) => b.metadata.annotations?.[SLOT_ANNOTATION]);
    assertEquals(new Set(slots).size, slots.length, `one Backup per slot: ${slots.join(", ")}`);
    const forSlot = (await backupsIn(env, ns)).filter((b) =>
      b.metadata.annotations?.[SLOT_ANNOTATION] === running.metadata.annotations?.[SLOT_ANNOTATION]
    );
    assertEquals(forSlot.map((b) => b.metadata.uid), [running.metadata.uid]);
  },
);
