/**
 * The `dbtether.io/reconcile: paused` annotation and `spec.managementPolicy: Observe`, against
 * the real apiserver and PostgreSQL (log_statement = all): a paused Database and user take a
 * spec change with no SQL and no Secret change and say Paused; an odd annotation value is
 * reported and ignored; unpaused they converge. A tenant's paused Database naming another
 * namespace's database changes nothing there. Observe on a hand-made database and role reports
 * what differs and sends no mutating statement, creates no Secret and, deleted, drops nothing;
 * Manage (with the adoption consent) then applies.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { conditionOf, type Obj } from "./helpers/fixtures.ts";
import { adoptionGrant, logMark, mutatingSince, resource } from "./helpers/tenant.ts";
import { runProgram } from "./helpers/program.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";
import { backupYaml, databaseYaml, storageYaml } from "./helpers/backup.ts";
import { backupsIn, minutely, scheduleYaml } from "./helpers/schedules.ts";
import { SLOT_ANNOTATION } from "../controllers/backup_schedule/names.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Cond = {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
};
type Live = Obj & {
  metadata: Obj["metadata"] & { generation: number; finalizers?: string[] };
  status?: { observedGeneration?: number; conditions?: Cond[] };
};

async function get(
  env: TestEnv,
  kind: string,
  name: string,
  ns: string,
): Promise<Live | undefined> {
  return await env.getJson<Live>(kind, name, ns);
}

/** Waits until condition `type` of the object satisfies `ok`; returns the object. */
async function waitCond(
  env: TestEnv,
  o: { kind: string; name: string; ns: string; type: string },
  ok: (c: Cond, obj: Live) => boolean,
): Promise<Live> {
  let last: Live | undefined;
  return await waitFor(`${o.kind} ${o.ns}/${o.name} ${o.type}`, async () => {
    const obj = last = await get(env, o.kind, o.name, o.ns);
    const c = conditionOf<Cond>(obj, o.type);
    return obj && c && ok(c, obj) ? obj : undefined;
  }, { timeoutMs: budget("ready") }).catch((e) => {
    throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(last?.status)}`);
  });
}

async function sql1(env: TestEnv, q: string): Promise<string> {
  return (await env.pg.superSql(q)).trim();
}

async function annotate(
  env: TestEnv,
  kind: string,
  name: string,
  ns: string,
  value: string | null,
) {
  const arg = value === null ? "dbtether.io/reconcile-" : `dbtether.io/reconcile=${value}`;
  await env.kube.kubectl(["annotate", "--overwrite", "-n", ns, kind, name, arg], { check: true });
}

async function patch(env: TestEnv, kind: string, name: string, ns: string, spec: unknown) {
  await env.kube.kubectl(
    ["patch", "-n", ns, kind, name, "--type", "merge", "-p", JSON.stringify({ spec })],
    { check: true },
  );
}

async function events(env: TestEnv, name: string, ns: string): Promise<string[]> {
  const r = await env.kube.kubectl(
    ["get", "events", "-n", ns, "--field-selector", `involvedObject.name=${name}`, "-o", "json"],
    { check: true },
  );
  return (JSON.parse(r.stdout) as { items: { reason: string }[] }).items.map((e) => e.reason);
}

Deno.test({ name: "pause and Observe", ...opts }, async (t) => {
  await using env = await startEnv({ pg: { extraConf: ["log_statement = 'all'"] }, program: true });
  const ns = await env.namespace("pause");
  const tenant = await env.namespace("tenant");
  await env.kube.apply(env.clusterManifest("main", { extraSpec: adoptionGrant([ns]) }));
  await env.kube.apply([
    resource("Database", { name: "shop", ns, spec: "clusterRef: { name: main }\n" }),
    resource("DatabaseUser", { name: "app", ns, spec: "databaseRef: { name: shop }\n" }),
  ].join("---\n"));
  await Promise.all([
    env.waitPhase("database", "shop", "Ready", { namespace: ns }),
    env.waitPhase("databaseuser", "app", "Ready", { namespace: ns }),
  ]);
  const secretBefore = await env.getJson<Obj>("secret", "app-credentials", ns);

  await t.step("paused: a spec change sends no SQL, writes no Secret and says Paused", async () => {
    // With a trailing space, as a hand-written annotation may have it: the rule trims.
    await annotate(env, "database", "shop", ns, "paused ");
    await annotate(env, "databaseuser", "app", ns, "paused");
    await Promise.all([
      waitCond(
        env,
        { kind: "database", name: "shop", ns, type: "Paused" },
        (c) => c.status === "True",
      ),
      waitCond(
        env,
        { kind: "databaseuser", name: "app", ns, type: "Paused" },
        (c) => c.status === "True",
      ),
    ]);
    const mark = await logMark(env.pg);
    await patch(env, "database", "shop", ns, { connectionLimit: 7 });
    await patch(env, "databaseuser", "app", ns, { connectionLimit: 5 });
    // The controllers saw the new generation (the Paused condition carries it) and did nothing.
    for (const kind of ["database", "databaseuser"]) {
      const name = kind === "database" ? "shop" : "app";
      const o = await waitCond(
        env,
        { kind, name, ns, type: "Paused" },
        (c, o) => c.observedGeneration === o.metadata.generation,
      );
      const ready = conditionOf<Cond>(o, "Ready")!;
      assertEquals(ready.status, "True", kind);
      assert(o.status!.observedGeneration! < o.metadata.generation, `${kind}: generation kept`);
      assert(ready.observedGeneration! < o.metadata.generation, `${kind}: Ready's generation kept`);
    }
    assertEquals(
      await sql1(env, "SELECT datconnlimit FROM pg_database WHERE datname = 'shop'"),
      "-1",
    );
    assertEquals(await sql1(env, "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app'"), "-1");
    assertEquals(await mutatingSince(env, mark), []);
    const secret = await env.getJson<Obj>("secret", "app-credentials", ns);
    assertEquals(secret?.metadata.resourceVersion, secretBefore?.metadata.resourceVersion);
    assert((await events(env, "shop", ns)).includes("Paused"));
  });

  await t.step("a tenant's paused Database naming shop's database changes nothing", async () => {
    await env.kube.apply(resource("Database", {
      name: "grab",
      ns: tenant,
      annotations: { "dbtether.io/reconcile": "paused" },
      spec: "clusterRef: { name: main }\ndatabaseName: shop\ndeletionPolicy: Delete\n",
    }));
    const o = await waitCond(
      env,
      { kind: "database", name: "grab", ns: tenant, type: "Paused" },
      (c) => c.status === "True",
    );
    assertEquals(o.metadata.finalizers ?? [], [], "no finalizer while paused");
    await env.kube.kubectl(["delete", "-n", tenant, "database", "grab", "--wait=true"], {
      check: true,
    });
    assertEquals(await sql1(env, "SELECT count(*) FROM pg_database WHERE datname = 'shop'"), "1");
    const shop = await get(env, "database", "shop", ns);
    assertEquals(conditionOf<Cond>(shop, "Ready")?.status, "True");
  });

  await t.step("a paused Database that is deleted keeps its database until unpaused", async () => {
    await env.kube.apply(resource("Database", {
      name: "temp",
      ns,
      spec: "clusterRef: { name: main }\ndeletionPolicy: Delete\n",
    }));
    await env.waitPhase("database", "temp", "Ready", { namespace: ns });
    await annotate(env, "database", "temp", ns, "paused");
    await env.kube.kubectl(["delete", "-n", ns, "database", "temp", "--wait=false"], {
      check: true,
    });
    await waitCond(
      env,
      { kind: "database", name: "temp", ns, type: "Paused" },
      (c) => c.message.includes("the deletion waits"),
    );
    assertEquals(await sql1(env, "SELECT count(*) FROM pg_database WHERE datname = 'temp'"), "1");
    await annotate(env, "database", "temp", ns, null);
    await waitFor("temp deleted", async () => !(await get(env, "database", "temp", ns)), {
      timeoutMs: budget("ready"),
    });
    assertEquals(await sql1(env, "SELECT count(*) FROM pg_database WHERE datname = 'temp'"), "0");
  });

  await t.step("unpaused converges; an unknown value is reported and ignored", async () => {
    await annotate(env, "database", "shop", ns, null);
    await annotate(env, "databaseuser", "app", ns, "Pause\n; DROP ROLE app");
    await waitFor(
      "the limits applied",
      async () =>
        await sql1(env, "SELECT datconnlimit FROM pg_database WHERE datname = 'shop'") === "7" &&
        await sql1(env, "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app'") === "5",
      {
        timeoutMs: budget("ready"),
      },
    );
    const user = await waitCond(
      env,
      { kind: "databaseuser", name: "app", ns, type: "Paused" },
      (c) => c.reason === "InvalidPauseValue",
    );
    assertEquals(conditionOf<Cond>(user, "Paused")!.status, "False");
    assert(conditionOf<Cond>(user, "Paused")!.message.includes('only "paused" pauses'));
    const shop = await waitFor("shop reconciled", async () => {
      const o = await get(env, "database", "shop", ns);
      return o?.status?.observedGeneration === o?.metadata.generation ? o : undefined;
    });
    assertEquals(conditionOf<Cond>(shop, "Paused"), undefined);
    assertEquals(conditionOf<Cond>(shop, "Ready")?.status, "True");
    assert((await events(env, "shop", ns)).includes("Resumed"));
    assertEquals(await sql1(env, "SELECT count(*) FROM pg_roles WHERE rolname = 'app'"), "1");
  });

  await t.step("Observe on a hand-made database and role: the differences, no change", async () => {
    // Made by hand with the admin (as on a cloud, where it is the master user): from 16 a
    // CREATEROLE admin may alter only roles it holds WITH ADMIN OPTION, which it has for these.
    for (
      const q of [
        "CREATE DATABASE legacy CONNECTION LIMIT 3",
        "CREATE ROLE legacy LOGIN CONNECTION LIMIT 2",
      ]
    ) {
      const r = await env.pg.psql(q);
      assertEquals(r.code, 0, r.stderr);
    }
    const before = await sql1(
      env,
      "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'legacy'",
    );
    const mark = await logMark(env.pg);
    const observed = [
      resource("Database", {
        name: "legacy",
        ns,
        spec: "clusterRef: { name: main }\nmanagementPolicy: Observe\nconnectionLimit: 10\n" +
          "deletionPolicy: Delete\n",
      }),
      resource("DatabaseUser", {
        name: "legacy",
        ns,
        spec: "databaseRef: { name: shop }\nmanagementPolicy: Observe\nconnectionLimit: 4\n",
      }),
    ].join("---\n");
    // dbtether plan agrees: the controller would change nothing.
    const file = await Deno.makeTempFile({ suffix: ".yaml" });
    await Deno.writeTextFile(file, observed);
    const plan = await runProgram(["plan", "-f", file, "--kubeconfig", env.kube.kubeconfigPath]);
    assertEquals(plan.code, 0, plan.stdout + plan.stderr);
    assertEquals(plan.stdout.match(/note: managementPolicy Observe/g)?.length, 2, plan.stdout);
    await env.kube.apply(observed);
    const db = await waitCond(
      env,
      { kind: "database", name: "legacy", ns, type: "InSync" },
      (c) => c.status === "False",
    );
    const dbMsg = conditionOf<Cond>(db, "InSync")!.message;
    assert(
      dbMsg.includes("DatabaseExistsUnmanaged") && dbMsg.includes("CONNECTION LIMIT 10"),
      dbMsg,
    );
    assertEquals(conditionOf<Cond>(db, "Ready")?.reason, "OutOfSync");
    const user = await waitCond(
      env,
      { kind: "databaseuser", name: "legacy", ns, type: "InSync" },
      (c) => c.status === "False",
    );
    const userMsg = conditionOf<Cond>(user, "InSync")!.message;
    assert(
      userMsg.includes("RoleExistsUnmanaged") && userMsg.includes("CONNECTION LIMIT 4"),
      userMsg,
    );
    assert(conditionOf<Cond>(user, "Ready")!.message.includes("no password is known"));
    assertEquals(await mutatingSince(env, mark), []);
    assertEquals(
      await sql1(env, "SELECT datconnlimit FROM pg_database WHERE datname = 'legacy'"),
      "3",
    );
    assertEquals(
      await sql1(env, "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'legacy'"),
      "2",
    );
    assertEquals(
      await sql1(env, "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'legacy'"),
      before,
    );
    assertEquals(await env.getJson("secret", "legacy-credentials", ns), undefined);
    assertEquals(await env.getJson("secret", "dbtether-legacy-state", ns), undefined);
    assertEquals(db.metadata.finalizers ?? [], []);
    assertEquals(user.metadata.finalizers ?? [], []);
  });

  await t.step(
    "a managementPolicy other than Manage or Observe is refused at admission",
    async () => {
      for (const value of ["observe", "Observe ", "Ignore"]) {
        const r = await env.kube.kubectl(["apply", "-f", "-"], {
          stdin: resource("Database", {
            name: "odd",
            ns: tenant,
            spec: `clusterRef: { name: main }\nmanagementPolicy: ${JSON.stringify(value)}\n`,
          }),
        });
        assert(r.code !== 0 && r.stderr.includes("managementPolicy"), `${value}: ${r.stderr}`);
      }
      assertEquals(await get(env, "database", "odd", tenant), undefined);
    },
  );

  await t.step("Observe on what matches: InSync=True, Ready", async () => {
    await patch(env, "database", "shop", ns, { managementPolicy: "Observe" });
    const o = await waitCond(
      env,
      { kind: "database", name: "shop", ns, type: "InSync" },
      (c) => c.status === "True",
    );
    assertEquals(conditionOf<Cond>(o, "Ready")?.reason, "Observed");
    await patch(env, "database", "shop", ns, { managementPolicy: "Manage" });
    await waitFor("InSync removed under Manage", async () => {
      const x = await get(env, "database", "shop", ns);
      return x && !conditionOf(x, "InSync") &&
        conditionOf<Cond>(x, "Ready")?.reason === "DatabaseReady";
    });
  });

  await t.step("Manage then applies: the user's role is adopted and converged", async () => {
    await env.kube.kubectl(
      ["annotate", "-n", ns, "databaseuser", "legacy", "dbtether.io/adopt=true"],
      { check: true },
    );
    await patch(env, "databaseuser", "legacy", ns, { managementPolicy: "Manage" });
    await env.waitPhase("databaseuser", "legacy", "Ready", { namespace: ns });
    assertEquals(
      await sql1(env, "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'legacy'"),
      "4",
    );
    const user = await get(env, "databaseuser", "legacy", ns);
    assertEquals(conditionOf(user, "InSync"), undefined);
    assert(await env.getJson("secret", "legacy-credentials", ns), "the Secret is written now");
  });

  await t.step("an Observed Database with deletionPolicy Delete drops nothing", async () => {
    await env.kube.kubectl(["delete", "-n", ns, "database", "legacy", "--wait=true"], {
      check: true,
    });
    assertEquals(await sql1(env, "SELECT count(*) FROM pg_database WHERE datname = 'legacy'"), "1");
    assertEquals(
      await sql1(env, "SELECT datconnlimit FROM pg_database WHERE datname = 'legacy'"),
      "3",
    );
  });

  await t.step("Manage then applies: the database is adopted and converged", async () => {
    await env.kube.apply(resource("Database", {
      name: "legacy",
      ns,
      annotations: { "dbtether.io/force-adopt": "true" },
      spec: "clusterRef: { name: main }\nconnectionLimit: 10\n",
    }));
    await env.waitPhase("database", "legacy", "Ready", { namespace: ns });
    assertEquals(
      await sql1(env, "SELECT datconnlimit FROM pg_database WHERE datname = 'legacy'"),
      "10",
    );
  });
});

/** Every file under `dir`, recursively (dot files included: a partial upload would be one). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await filesUnder(p));
    else out.push(p);
  }
  return out;
}

/** Applies `yaml` (one object) with the pause annotation added, and waits for Paused=True. */
async function applyPaused(
  env: TestEnv,
  yaml: string,
  o: { kind: string; name: string; ns: string },
) {
  await env.kube.apply(
    yaml.replace("metadata:\n", "metadata:\n  annotations: { dbtether.io/reconcile: paused }\n"),
  );
  await waitCond(env, { ...o, type: "Paused" }, (c) => c.status === "True");
}

Deno.test({ name: "pause on PostgresDatabase and BackupSchedule", ...opts }, async (t) => {
  await using env = await startEnv({
    pg: true,
    program: true,
    programArgs: ["--postgresdatabase-cluster", "test-pg"],
  });
  await env.kube.apply(env.clusterManifest("test-pg"));
  const ns = await env.namespace("pause-more");
  const dir = await Deno.makeTempDir({ prefix: "dbtether-pause-" });

  await t.step("a PostgresDatabase created paused gets nothing until unpaused", async () => {
    await env.kube.kubectl(["apply", "-n", ns, "-f", "-"], {
      check: true,
      stdin: `apiVersion: experimental.bujarmurati.com/v1
kind: PostgresDatabase
metadata:
  name: held
  annotations: { dbtether.io/reconcile: paused }
spec:
  name: held_db
  targetSecret: { name: held-secret }
`,
    });
    const o = await waitCond(
      env,
      { kind: "pgdb", name: "held", ns, type: "Paused" },
      (c) => c.status === "True" && c.reason === "ReconcilePaused",
    );
    assertEquals(o.metadata.finalizers ?? [], [], "a paused object gets no finalizer");
    assertEquals(
      await sql1(env, "SELECT count(*) FROM pg_database WHERE datname = 'held_db'"),
      "0",
    );
    assertEquals(
      await sql1(env, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'held_db%'"),
      "0",
    );
    assertEquals(await env.getJson<Obj>("secret", "held-secret", ns), undefined);
    assert((await events(env, "held", ns)).includes("Paused"));

    await annotate(env, "pgdb", "held", ns, null);
    await env.waitPhase("pgdb", "held", "Ready", { namespace: ns });
    assertEquals(
      await sql1(env, "SELECT count(*) FROM pg_database WHERE datname = 'held_db'"),
      "1",
    );
    assert(await env.getJson<Obj>("secret", "held-secret", ns), "the Secret after unpausing");
    const after = await get(env, "pgdb", "held", ns);
    assertEquals(conditionOf<Cond>(after, "Paused"), undefined, "Paused is gone once resumed");
  });

  await t.step("a paused BackupSchedule makes no Backup across a slot, and skips it", async () => {
    await env.kube.apply(storageYaml("local", { localPath: dir }));
    await env.kube.apply(databaseYaml(ns, "app", "pause_app"));
    await env.waitPhase("database", "app", "Ready", { namespace: ns });
    await applyPaused(env, scheduleYaml(ns, "nightly", minutely("app", "local")), {
      kind: "bks",
      name: "nightly",
      ns,
    });
    // A whole minute boundary passes while paused (a slot of "* * * * *").
    const slot = Math.floor(Date.now() / 60_000) * 60_000 + 60_000;
    await new Promise((r) => setTimeout(r, slot + 2_000 - Date.now()));
    assertEquals(await backupsIn(env, ns), [], "no Backup while paused");
    assertEquals(await filesUnder(dir), [], "nothing stored while paused");
    const paused = await get(env, "bks", "nightly", ns) as Live & {
      status?: { lastScheduleTime?: string };
    };
    assertEquals(paused.status?.lastScheduleTime, undefined, "no slot handled while paused");

    await annotate(env, "bks", "nightly", ns, null);
    // The first pass after the pause records the slot that came meanwhile as skipped, with an
    // Event, and removes Paused: no catch-up Backup for it.
    const resumed = await waitFor("the schedule resumed", async () => {
      const s = await get(env, "bks", "nightly", ns) as Live & {
        status?: { lastScheduleTime?: string };
      };
      return s && !conditionOf<Cond>(s, "Paused") && s.status?.lastScheduleTime ? s : undefined;
    }, { timeoutMs: budget("react") });
    assert(Date.parse(resumed.status!.lastScheduleTime!) >= slot, resumed.status!.lastScheduleTime);
    assert((await events(env, "nightly", ns)).includes("SlotSkipped"));
    // A Backup may come for a later slot, never for one handled as skipped.
    const skippedUpTo = Date.parse(resumed.status!.lastScheduleTime!);
    for (const b of await backupsIn<Obj>(env, ns)) {
      const at = Date.parse(b.metadata.annotations?.[SLOT_ANNOTATION] ?? "");
      assert(at > skippedUpTo, `a Backup for a skipped slot: ${b.metadata.name}`);
    }
  });

  await t.step("a Backup created paused dumps nothing until unpaused", async () => {
    const before = await filesUnder(dir);
    await applyPaused(env, backupYaml(ns, "held", "app", "local"), {
      kind: "backup",
      name: "held",
      ns,
    });
    const held = await get(env, "backup", "held", ns) as Live & { status?: { phase?: string } };
    assert(
      held.status?.phase !== "Completed" && held.status?.phase !== "Running",
      held.status?.phase,
    );
    assertEquals(await filesUnder(dir), before, "nothing stored while paused");
    await annotate(env, "backup", "held", ns, null);
    await env.waitPhase("backup", "held", "Completed", {
      namespace: ns,
      timeoutMs: budget("backup"),
    });
    const done = await get(env, "backup", "held", ns);
    assertEquals(conditionOf<Cond>(done, "Paused"), undefined, "Paused is gone once resumed");
    assert((await filesUnder(dir)).length > before.length, "the dump is stored once resumed");
  });

  await t.step(
    "a tenant's pause holds only its own; a hostile value is reported and ignored",
    async () => {
      // Another tenant, same names as the first one's objects, on the same storage and server.
      const rival = await env.namespace("pause-rival");
      await env.kube.apply(databaseYaml(rival, "app", "pause_rival_app"));
      await env.waitPhase("database", "app", "Ready", { namespace: rival });
      await applyPaused(env, scheduleYaml(rival, "nightly", minutely("app", "local")), {
        kind: "bks",
        name: "nightly",
        ns: rival,
      });
      // A value that is not "paused" pauses nothing: the Backup runs and says why it ignored it.
      const hostile = "paused\n; DROP DATABASE pause_app; --";
      await env.kube.apply(
        backupYaml(rival, "held", "app", "local").replace(
          "metadata:\n",
          `metadata:\n  annotations: { dbtether.io/reconcile: ${JSON.stringify(hostile)} }\n`,
        ),
      );
      await env.waitPhase("backup", "held", "Completed", {
        namespace: rival,
        timeoutMs: budget("backup"),
      });
      const ignored = await waitCond(
        env,
        { kind: "backup", name: "held", ns: rival, type: "Paused" },
        (c) => c.reason === "InvalidPauseValue",
      );
      assertEquals(conditionOf<Cond>(ignored, "Paused")!.status, "False");
      // The first tenant's objects of the same names go on: its schedule is not paused, and a new
      // Backup of its database completes while the rival's schedule is.
      const mine = await get(env, "bks", "nightly", ns);
      assertEquals(conditionOf<Cond>(mine, "Paused"), undefined, "the rival paused my schedule");
      await env.kube.apply(backupYaml(ns, "while-rival-paused", "app", "local"));
      await env.waitPhase("backup", "while-rival-paused", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
      });
      assertEquals(
        await sql1(env, "SELECT count(*) FROM pg_database WHERE datname = 'pause_app'"),
        "1",
      );
      // The rival's paused schedule made nothing, whatever slots passed meanwhile.
      assertEquals(
        (await backupsIn(env, rival)).map((b) => b.metadata.name),
        ["held"],
        "a Backup from the paused schedule",
      );
    },
  );
  await Deno.remove(dir, { recursive: true }).catch(() => {});
});
