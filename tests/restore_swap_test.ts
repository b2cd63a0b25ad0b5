/**
 * A restore never leaves the target worse than before (issue 7 items 6 and 7), and memberships
 * borrowed to end sessions never stay granted (item 14), through the real program.
 *
 * - A typo'd path, a corrupted object, and a SIGKILL mid-restore with `onConflict: drop` leave
 *   the original data; nothing of the restore (scratch database, login role) is left once the
 *   Restore is finished or deleted.
 * - A plain dump with a large object commits early (pg_dump's own BEGIN/COMMIT): a failure
 *   after that COMMIT still leaves an empty target empty.
 * - A drop-restore equals the backup, ends other roles' sessions on the target and borrows
 *   nothing for longer than the swap.
 * - A program killed while it holds a borrowed membership (dropping a Database with another
 *   role's session open) gives it back after the restart.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import {
  backupYaml,
  databaseYaml,
  fingerprint,
  freezeRestoreTool,
  holdTransaction,
  type Obj,
  openSession,
  restoreLeftovers,
  restoreYaml,
  SEED,
  storageYaml,
  waitPhase,
} from "./helpers/backup.ts";
import { readyReason, secretData } from "./helpers/fixtures.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Enough rows that psql cannot have read the whole dump before it is stopped. */
const BULK = "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v " +
  "FROM generate_series(1, 40000) g;";

const objects = async (env: TestEnv, database: string): Promise<string> =>
  (await env.pg.superSql(
    "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
      "WHERE n.nspname = 'public') || ' relations, ' || " +
      "(SELECT count(*) FROM pg_largeobject_metadata) || ' large objects'",
    { database },
  )).trim();

/** Copies a stored dump and its (signed) manifest to `to`, then lets `damage` change bytes. */
async function copyDump(
  dir: string,
  from: string,
  to: string,
  damage: (bytes: Uint8Array) => void,
): Promise<string> {
  const bytes = await Deno.readFile(`${dir}/${from}`);
  damage(bytes);
  await Deno.writeFile(`${dir}/${to}`, bytes);
  await Deno.copyFile(`${dir}/${from}.manifest.json`, `${dir}/${to}.manifest.json`);
  return to;
}

async function finished(env: TestEnv, name: string, ns: string): Promise<Obj> {
  return await waitFor(`Restore ${name} to finish`, async () => {
    const r = await env.getJson<Obj>("restore", name, ns);
    return r?.status?.phase === "Completed" || r?.status?.phase === "Failed" ? r : undefined;
  }, { timeoutMs: budget("backup") });
}

Deno.test({ name: "Restore: the target is never left worse than before", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await env.kube.apply(env.clusterManifest("test-pg"));
  const dir = await Deno.makeTempDir({ prefix: "dbtether-swap-" });
  const sessions: { kill(): Promise<void> }[] = [];
  try {
    await env.kube.apply(storageYaml("local", { localPath: dir }));
    const ns = await env.namespace("swap");
    await env.kube.apply(
      databaseYaml(ns, "orig", "t6_orig") + `---
apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: viewer, namespace: ${ns} }
spec:
  database: { name: orig, privileges: readonly }
`,
    );
    await waitPhase(env, "database", "orig", "Ready", { namespace: ns });
    assertEquals((await env.pg.psql(SEED + BULK, { database: "t6_orig" })).code, 0);
    const atBackup = await fingerprint(env, "t6_orig");
    await env.kube.apply(backupYaml(ns, "b1", "orig", "local"));
    const b1 = await waitPhase(env, "backup", "b1", "Completed", {
      namespace: ns,
      timeoutMs: budget("backup"),
    });
    const b1Path = b1.status!.path!;
    const base = b1Path.slice(0, b1Path.lastIndexOf("/"));
    assertEquals(
      (await env.pg.psql("INSERT INTO customers(name) VALUES ('after the backup')", {
        database: "t6_orig",
      })).code,
      0,
    );
    const now = await fingerprint(env, "t6_orig");
    assert(now !== atBackup);
    const untouched = async () => {
      assertEquals(await fingerprint(env, "t6_orig"), now, "the original data changed");
      await waitFor("no leftovers", async () => (await restoreLeftovers(env)).length === 0);
    };
    const drop = "  onConflict: drop\n";

    await t.step("a typo'd path → BackupNotFound; the original is untouched", async () => {
      const src = `    path: ${base}/typo.sql.gz\n    storageRef:\n      name: local`;
      await env.kube.apply(restoreYaml(ns, "typo", src, "orig", drop));
      const r = await finished(env, "typo", ns);
      assertEquals([r.status?.phase, readyReason(r)], ["Failed", "BackupNotFound"]);
      await untouched();
    });

    await t.step("a corrupted object → ChecksumMismatch; the original is untouched", async () => {
      const key = await copyDump(dir, b1Path, `${base}/corrupt.sql.gz`, (b) => {
        b[Math.floor(b.length / 2)]! ^= 0xff;
      });
      const src = `    path: ${key}\n    storageRef:\n      name: local`;
      await env.kube.apply(restoreYaml(ns, "corrupt", src, "orig", drop));
      const r = await finished(env, "corrupt", ns);
      assertEquals([r.status?.phase, readyReason(r)], ["Failed", "ChecksumMismatch"]);
      await untouched();
    });

    await t.step(
      "SIGKILL mid-restore, Restore deleted meanwhile → original kept, nothing left",
      async () => {
        await env.kube.apply(
          restoreYaml(ns, "killed", "    backupRef:\n      name: b1", "orig", drop),
        );
        // psql starts only once the scratch database is ready: stop it there, kill the program.
        const psql = await freezeRestoreTool(env);
        await env.killProgram("SIGKILL");
        // The orphaned psql reads end-of-file and commits what it had: into the scratch database.
        psql.resume();
        const afterKill = await fingerprint(env, "t6_orig").catch((e) => String(e));
        const del = await env.kube.kubectl([
          "delete",
          "restore",
          "killed",
          "-n",
          ns,
          "--wait=false",
        ]);
        // Started again before any assertion, so that a failure here leaves the next steps a
        // running program.
        await env.startProgram();
        assertEquals(afterKill, now, "the SIGKILL left the target changed");
        assertEquals(del.code, 0, del.stderr);
        await waitFor(
          "the deleted Restore to be cleaned up and gone",
          async () => (await env.getJson("restore", "killed", ns)) === undefined,
          {
            timeoutMs: budget("failover"),
          },
        );
        await untouched();
      },
    );

    await t.step("a drop-restore equals the backup and ends other roles' sessions", async () => {
      const viewer = (await secretData(env, { namespace: ns, name: "viewer-credentials" })) ?? {};
      const session = await openSession(env, {
        user: viewer.username!,
        password: viewer.password!,
        database: "t6_orig",
      });
      sessions.push(session);
      const acl = () => env.pg.superSql("SELECT datacl FROM pg_database WHERE datname = 't6_orig'");
      const aclBefore = await acl();
      await env.kube.apply(restoreYaml(ns, "good", "    backupRef:\n      name: b1", "orig", drop));
      const r = await finished(env, "good", ns);
      assertEquals(r.status?.phase, "Completed", r.status?.message ?? "");
      assertEquals(await fingerprint(env, "t6_orig"), atBackup);
      // The swapped-in database has the ACL the Database controller gives (PUBLIC keeps TEMP).
      assertEquals(await acl(), aclBefore);
      let ended: Deno.CommandStatus | undefined;
      session.status.then((st) => (ended = st), () => {});
      await waitFor("the viewer's session to be ended", () => ended, {
        timeoutMs: budget("react"),
      });
      assert(!ended!.success, "the viewer's psql failed when its session was ended");
      const member = await env.pg.superSql(
        `SELECT pg_has_role('${env.pg.admin.user}', '${viewer.username}', 'USAGE')`,
      );
      assertEquals(member.trim(), "f", "the admin still holds the viewer's role");
      // The viewer reads the restored data (grants re-applied to the new database).
      const read = await env.pg.psql("SELECT count(*) FROM customers", {
        user: viewer.username!,
        password: viewer.password!,
        database: "t6_orig",
      });
      assertEquals([read.code, read.stdout.trim()], [0, "500"], read.stderr);
      await waitFor("no leftovers", async () => (await restoreLeftovers(env)).length === 0);
    });

    await t.step("a large object's early COMMIT cannot leave a partial target", async () => {
      await env.kube.apply(
        databaseYaml(ns, "lo-src", "t7_src") + "---\n" + databaseYaml(ns, "lo-dst", "t7_dst"),
      );
      await waitPhase(env, "database", "lo-src", "Ready", { namespace: ns });
      await waitPhase(env, "database", "lo-dst", "Ready", { namespace: ns });
      // pg_dump writes the large object between BEGIN and COMMIT of its own, then post-data:
      // the index and its comment, long enough that the restore reads past that COMMIT well
      // before the end of the object, where the damage is found.
      const lo = await env.pg.psql(
        `CREATE TABLE docs (id int PRIMARY KEY, body oid);
         INSERT INTO docs VALUES (1, lo_from_bytea(0, convert_to('large object payload', 'UTF8')));
         CREATE INDEX docs_body ON docs (body);
         DO $$ BEGIN EXECUTE format('COMMENT ON INDEX docs_body IS %L',
           (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 60000))); END $$;`,
        { database: "t7_src" },
      );
      assertEquals(lo.code, 0, lo.stderr);
      await env.kube.apply(backupYaml(ns, "b-lo", "lo-src", "local"));
      const blo = await waitPhase(env, "backup", "b-lo", "Completed", {
        namespace: ns,
        timeoutMs: budget("backup"),
      });
      const loPath = blo.status!.path!;
      const key = await copyDump(dir, loPath, `${loPath}.damaged.sql.gz`, (b) => {
        b[b.length - 1]! ^= 0xff;
      });
      const src = `    path: ${key}\n    storageRef:\n      name: local`;
      await env.kube.apply(restoreYaml(ns, "lo-broken", src, "lo-dst"));
      const r = await finished(env, "lo-broken", ns);
      assertEquals([r.status?.phase, readyReason(r)], ["Failed", "ChecksumMismatch"]);
      assertEquals(await objects(env, "t7_dst"), "0 relations, 0 large objects");
      await env.kube.apply(
        restoreYaml(ns, "lo-good", "    backupRef:\n      name: b-lo", "lo-dst", drop),
      );
      const good = await finished(env, "lo-good", ns);
      assertEquals(good.status?.phase, "Completed", good.status?.message ?? "");
      const body = await env.pg.superSql(
        "SELECT convert_from(lo_get(body), 'UTF8') FROM docs WHERE id = 1",
        { database: "t7_dst" },
      );
      assertEquals(body.trim(), "large object payload");
      await waitFor("no leftovers", async () => (await restoreLeftovers(env)).length === 0);
    });

    await t.step(
      "killed while holding a borrowed membership → given back after restart",
      async () => {
        await env.kube.apply(databaseYaml(ns, "doomed", "t14_doomed"));
        await waitPhase(env, "database", "doomed", "Ready", { namespace: ns });
        // A role the admin made (with the master user, as on a cloud) but cannot act for (16+:
        // it holds it WITH ADMIN OPTION only), with a session holding the database open.
        const made = await env.pg.psql(
          "CREATE ROLE victim14 LOGIN PASSWORD 'victim14-pw'; " +
            "GRANT CONNECT ON DATABASE t14_doomed TO victim14;",
        );
        assertEquals(made.code, 0, made.stderr);
        sessions.push(
          await openSession(env, {
            user: "victim14",
            password: "victim14-pw",
            database: "t14_doomed",
          }),
        );
        // DROP DATABASE removes the database's settings after ending the sessions: a lock on
        // pg_db_role_setting holds the drop between borrowing and giving back. (Not pg_shdepend:
        // from 16 a membership grant records its grantor there, so borrowing would wait too.)
        const lock = holdTransaction(
          env,
          "postgres",
          "LOCK TABLE pg_catalog.pg_db_role_setting IN SHARE MODE;",
        );
        await lock.written;
        const admin = env.pg.admin.user;
        const del = await env.kube.kubectl([
          "delete",
          "database",
          "doomed",
          "-n",
          ns,
          "--wait=false",
        ]);
        assertEquals(del.code, 0, del.stderr);
        await waitFor(
          "the admin to borrow the victim's role and wait in DROP DATABASE",
          async () =>
            (await env.pg.superSql(
              `SELECT pg_has_role('${admin}', 'victim14', 'USAGE') AND EXISTS (SELECT 1 ` +
                "FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DROP DATABASE%')",
            )).trim() === "t",
          { timeoutMs: budget("ready") },
        );
        await env.killProgram("SIGKILL");
        await lock.end("ROLLBACK");
        await env.startProgram();
        await waitFor(
          "the Database to be gone",
          async () => (await env.getJson("database", "doomed", ns)) === undefined,
          {
            timeoutMs: budget("failover"),
          },
        );
        const member = await env.pg.superSql(
          `SELECT pg_has_role('${admin}', 'victim14', 'USAGE')`,
        );
        assertEquals(member.trim(), "f", "the admin kept the borrowed membership");
        assertEquals(await restoreLeftovers(env), []);
      },
    );
  } finally {
    for (const s of sessions) await s.kill();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
