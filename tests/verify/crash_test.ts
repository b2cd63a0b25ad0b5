/**
 * Crash convergence (issue 13): the controller is SIGKILLed at random moments while databases,
 * users, rotations, backups and a minutely BackupSchedule are in flight, and restarted each time.
 * After every restart the declared state is reached again before the next change (the time is
 * reported against the `failover` budget); after the last, the server and the storage must hold
 * exactly the declared state: every declared database and role and no other, every Secret's
 * password logs in, every Completed Backup has a complete object (the stored bytes match
 * status.sha256, gunzip cleanly and end with pg_dump's trailer), a Backup interrupted too often
 * (`--backup-max-attempts`) is Failed and has removed what it left, no schedule slot has two
 * Backups, and every stored dump is the object of exactly one Completed Backup.
 *
 * `DBTETHER_VERIFY_KILLS` (default 5; `make verify-long`: 100) sets the number of random kills,
 * `DBTETHER_VERIFY_SLOT_KILLS` (default 1; `make verify-long`: 5) the kills made the moment a
 * scheduled Backup appears (one a minute: each adds up to a minute).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { backupYaml, type Obj, SEED, storageYaml } from "../helpers/backup.ts";
import { startEnv, type TestEnv } from "../helpers/env.ts";
import { annotate, runsAs, secretData } from "../helpers/fixtures.ts";
import { startMinio } from "../helpers/storage_servers.ts";
import { budget } from "../helpers/timeouts.ts";
import { waitFor } from "../helpers/wait.ts";
import { minutely, scheduleYaml } from "../helpers/schedules.ts";
import { assertCompleteDump, figure, list, param } from "./workload.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** What the test declared: databases (by resource name), users → [database, strategy], backups. */
interface Declared {
  dbs: Set<string>;
  users: Map<string, { db: string; alternating: boolean }>;
  backups: Map<string, string>;
}

const pad = (i: number) => String(i).padStart(3, "0");

function databaseYaml(ns: string, name: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: ${name}, namespace: ${ns} }
spec: { clusterRef: { name: main }, deletionPolicy: Delete }
`;
}

function userYaml(ns: string, name: string, u: { db: string; alternating: boolean }): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: ${name}, namespace: ${ns} }
spec:
  databaseRef: { name: ${u.db} }
  privileges: readwrite
  deletionPolicy: Delete
  rotation: { strategy: ${u.alternating ? "Alternating" : "InPlace"} }
`;
}

const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];

/** One random change of the declared state, applied at once (not waited for). */
async function mutate(env: TestEnv, ns: string, d: Declared, k: number): Promise<string> {
  const users = [...d.users.keys()];
  // Each kind of change in turn, so even the short variant has each in flight once.
  switch (k % 5) {
    case 0: {
      const db = `cr-d${pad(100 + k)}`;
      d.dbs.add(db);
      const user = { db, alternating: k % 2 === 0 };
      d.users.set(`cr-u${pad(100 + k)}`, user);
      await env.kube.apply(
        databaseYaml(ns, db) + "---\n" + userYaml(ns, `cr-u${pad(100 + k)}`, user),
      );
      return "database+user";
    }
    case 1: {
      const victim = users.length > 2 ? pick(users) : undefined;
      if (!victim) return "none";
      d.users.delete(victim);
      await env.kube.kubectl(["delete", "databaseuser", victim, "-n", ns, "--wait=false"], {
        check: true,
      });
      return "delete user";
    }
    case 2: {
      const name = pick(users)!;
      await annotate(
        env,
        { kind: "databaseuser", namespace: ns, name },
        `dbtether.io/rotate=k${k}`,
      );
      return "rotate";
    }
    case 3: {
      const name = `cr-b${pad(k)}`;
      d.backups.set(name, "cr-d000");
      await env.kube.apply(backupYaml(ns, name, "cr-d000", "store"));
      return "backup";
    }
    default: {
      const name = `cr-u${pad(200 + k)}`;
      const user = { db: pick([...d.dbs])!, alternating: k % 3 === 0 };
      d.users.set(name, user);
      await env.kube.apply(userYaml(ns, name, user));
      return "user";
    }
  }
}

const lines = (s: string) => s.split("\n").map((x) => x.trim()).filter(Boolean).sort();

/** Server roles and databases that match the declared state, or a description of the gap. */
async function serverMatches(env: TestEnv, d: Declared): Promise<string | undefined> {
  const roles = lines(
    await env.pg.superSql(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'cr-u%'`),
  );
  const dbs = lines(
    await env.pg.superSql(`SELECT datname FROM pg_database WHERE datname LIKE 'cr\\_d%'`),
  );
  const wantRoles = [...d.users].flatMap(([n, u]) => u.alternating ? [n, `${n}_b`] : [n]).sort();
  const wantDbs = [...d.dbs].map((n) => n.replaceAll("-", "_")).sort();
  const diff = (have: string[], want: string[]) =>
    `missing ${want.filter((x) => !have.includes(x))} extra ${
      have.filter((x) => !want.includes(x))
    }`;
  if (JSON.stringify(roles) !== JSON.stringify(wantRoles)) {
    return `roles: ${diff(roles, wantRoles)}`;
  }
  if (JSON.stringify(dbs) !== JSON.stringify(wantDbs)) return `databases: ${diff(dbs, wantDbs)}`;
  return undefined;
}

/**
 * A Backup interrupted `--backup-max-attempts` times gives up by design; that is a declared
 * outcome too, as long as it left no object behind (checked after convergence).
 */
const GAVE_UP = /interrupted \d+ times/;

/** The label the BackupSchedule puts on its Backups (controllers/backup_schedule/names.ts). */
const SCHEDULE_LABEL = "dbtether.io/schedule";
/** Its annotation with the slot. */
const SLOT_ANNOTATION = "dbtether.io/scheduled-at";

type BackupStatus = {
  phase?: string;
  message?: string;
  path?: string;
  sha256?: string;
  leftoversRemovedAt?: string;
};

/**
 * A Backup is done: Completed, or Failed after too many interruptions with what it left removed
 * (a Backup with no key yet left nothing).
 */
const backupDone = (s: BackupStatus) =>
  s.phase === "Completed" ||
  (s.phase === "Failed" && GAVE_UP.test(s.message ?? "") && (!s.path || !!s.leftoversRemovedAt));

/**
 * Whether every declared resource is Ready (Backups: done) and only those exist. The schedule's
 * Backups are not declared one by one: each must be done, except the newest, which may still run
 * (its slot came while converging).
 */
async function resourcesConverged(env: TestEnv, ns: string, d: Declared): Promise<boolean> {
  const ready = async (
    kind: string,
    names: Set<string> | Map<string, unknown>,
    done: (s: BackupStatus) => boolean,
  ) => {
    const items = (await list(env, kind, ns)).items.filter((o) =>
      !o.metadata.labels?.[SCHEDULE_LABEL]
    );
    return items.length === names.size &&
      items.every((o) =>
        names.has(o.metadata.name) && o.status && done(o.status) &&
        o.status.observedGeneration === o.metadata.generation
      );
  };
  const isReady = (s: { phase?: string }) => s.phase === "Ready";
  return await ready("databases", d.dbs, isReady) &&
    await ready("databaseusers", d.users, isReady) &&
    await ready("backups", d.backups, backupDone) &&
    (await scheduled(env, ns)).slice(0, -1).every((b) => backupDone(b.status ?? {}));
}

/** The schedule's Backups, oldest slot first. */
async function scheduled(env: TestEnv, ns: string) {
  const items = (await list(env, "backups", ns)).items.filter((o) =>
    o.metadata.labels?.[SCHEDULE_LABEL]
  );
  const slot = (o: (typeof items)[number]) => o.metadata.annotations?.[SLOT_ANNOTATION] ?? "";
  return items.sort((a, b) => slot(a).localeCompare(slot(b))).map((o) => ({
    name: o.metadata.name,
    slot: slot(o),
    status: o.status as BackupStatus | undefined,
  }));
}

Deno.test(
  { name: "SIGKILLs at random moments converge to exactly the declared state", ...opts },
  async () => {
    const kills = param("DBTETHER_VERIFY_KILLS", 5);
    const slotKills = param("DBTETHER_VERIFY_SLOT_KILLS", 1);
    await using minio = await startMinio();
    await minio.createBucket("backups");
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("main"));
    await env.kube.apply(storageYaml("store", { server: minio }));
    const ns = await env.namespace("crash");
    const d: Declared = { dbs: new Set(), users: new Map(), backups: new Map() };
    for (let i = 0; i < 3; i++) d.dbs.add(`cr-d${pad(i)}`);
    for (let i = 0; i < 6; i++) {
      d.users.set(`cr-u${pad(i)}`, {
        db: `cr-d${pad(i % 3)}`,
        alternating: i % 2 === 1,
      });
    }
    await env.kube.apply(
      [
        ...[...d.dbs].map((n) => databaseYaml(ns, n)),
        ...[...d.users].map(([n, u]) => userYaml(ns, n, u)),
      ]
        .join("---\n"),
    );
    await env.waitPhase("database", "cr-d000", "Ready", { namespace: ns });
    assertEquals((await env.pg.psql(SEED, { database: "cr_d000" })).code, 0);
    await env.kube.apply(scheduleYaml(ns, "cr-s", minutely("cr-d000", "store")));
    const converged = async () =>
      await resourcesConverged(env, ns, d) && await serverMatches(env, d) === undefined;

    const started = Date.now();
    const done: Record<string, number> = {};
    const afterRestart: number[] = [];
    let converging = Date.now();
    try {
      for (let k = 0; k < kills; k++) {
        const what = await mutate(env, ns, d, k);
        done[what] = (done[what] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 500 + Math.random() * 4000));
        await env.restartProgram("SIGKILL");
        converging = Date.now();
        await waitFor(`the declared state after kill ${k + 1}`, converged, {
          timeoutMs: budget("failover"),
          intervalMs: 500,
        });
        afterRestart.push(Date.now() - converging);
      }
      // Kills timed to a scheduled Backup: the moment its slot's Backup exists, its dump starts.
      for (let i = 0; i < slotKills; i++) {
        const seen = (await scheduled(env, ns)).length;
        await waitFor(
          "the next slot's Backup",
          async () => (await scheduled(env, ns)).length > seen,
          { timeoutMs: budget("failover"), intervalMs: 250 },
        );
        await env.restartProgram("SIGKILL");
        converging = Date.now();
        await waitFor(`the declared state after slot kill ${i + 1}`, converged, {
          timeoutMs: budget("failover"),
          intervalMs: 500,
        });
        afterRestart.push(Date.now() - converging);
      }
    } catch (e) {
      const stuck = ["databases", "databaseusers", "backups"].map(async (kind) =>
        (await list(env, kind, ns)).items.filter((o) =>
          !["Ready", "Completed"].includes(o.status?.phase ?? "")
        )
          .map((o) => `${kind} ${o.metadata.name}: ${o.status?.phase} ${o.status?.message ?? ""}`)
      );
      const detail = (await Promise.all(stuck)).flat().join("\n");
      throw new Error(`${(e as Error).message}\n${await serverMatches(env, d) ?? ""}\n${detail}`);
    }
    const sorted = afterRestart.toSorted((a, b) => a - b);
    const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    figure("crash: kills, random / at a slot", `${kills} / ${slotKills}`);
    figure("crash: changes in flight", JSON.stringify(done));
    figure("crash: kill loop", `${((Date.now() - started) / 1000).toFixed(0)} s`);
    figure(
      "crash: converged after each restart, median / max (goal 60 s)",
      `${sec(sorted[Math.floor(sorted.length / 2)]!)} / ${sec(sorted.at(-1)!)}`,
      "failover",
    );

    for (const [name, u] of d.users) {
      const s = await secretData(env, { namespace: ns, name: `${name}-credentials` });
      assert(s?.password, `${name} has no Secret`);
      const database = u.db.replaceAll("-", "_");
      assert(
        await runsAs(env.pg, { user: s.username!, password: s.password, database }),
        `${name} logs in`,
      );
    }
    // The schedule stops, and its last Backup finishes, before the storage is compared.
    await env.kube.apply(
      scheduleYaml(ns, "cr-s", minutely("cr-d000", "store", "  suspend: true\n")),
    );
    await waitFor(
      "the schedule's Backups done",
      async () => (await scheduled(env, ns)).every((b) => backupDone(b.status ?? {})),
      { timeoutMs: budget("backup") },
    );
    const slots = await scheduled(env, ns);
    const twice = slots.filter((b, i) => slots.findIndex((x) => x.slot === b.slot) !== i);
    assertEquals(twice.map((b) => `${b.name} (${b.slot})`), [], "no slot has two Backups");
    const store = minio.makeStore({ bucket: "backups" });
    try {
      let completed = 0;
      const leftBehind: string[] = [];
      const recorded: string[] = [];
      for (const name of [...d.backups.keys(), ...slots.map((b) => b.name)]) {
        const b = await env.getJson<Obj>("backup", name, ns);
        if (b?.status?.phase === "Failed") {
          if (b.status.path && await store.head(b.status.path)) leftBehind.push(name);
          continue;
        }
        completed++;
        recorded.push(b!.status!.path!);
        await assertCompleteDump(store, b!, name);
      }
      const objects = (await store.list("")).filter((o) => o.key.endsWith(".sql.gz"));
      const total = d.backups.size + slots.length;
      figure(
        "crash: Backups Completed / gave up after 3 interruptions / objects stored",
        `${completed} / ${total - completed} / ${objects.length}`,
      );
      figure("crash: scheduled slots backed up", slots.length);
      assertEquals(leftBehind, [], "a Backup that gave up removed its object");
      assertEquals(
        objects.map((o) => o.key).sort(),
        recorded.sort(),
        "every stored dump is the object of exactly one Completed Backup",
      );
    } finally {
      await store.close();
    }
  },
);
