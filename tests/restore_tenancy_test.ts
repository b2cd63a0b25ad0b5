/**
 * Restores a hostile tenant cannot turn against anyone (issue 7 items 1, 4 and 5), through the
 * real program. The attacks use only what a tenant has: namespaced resources in its own
 * namespace with any string in any field (and, for forged Backup status, the status of its own
 * Backup). Dumps "from elsewhere" are written straight into the storage directory, as anyone
 * with write access to a bucket could.
 *
 * - Item 1: databases named like connection strings (`host=`, `service=`, `passfile=`, quotes,
 *   backslashes) back up and restore (plain and custom) with equal data, and nothing ever dials
 *   the address a name points at.
 * - Item 4: namespace B cannot restore A's backup (by path, by a forged Backup status, by
 *   latestFrom), until the BackupStorage grants B crossNamespace.
 * - Item 5: a dump's psql meta-commands never run; unsigned and altered manifests are refused
 *   unless the BackupStorage allows unsigned dumps; the restore session cannot step out of the
 *   owner role (`SET ROLE NONE`, `SET SESSION AUTHORIZATION DEFAULT`) to touch other tenants'
 *   roles; the signing key appears in no log, Event or status.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { createHash } from "node:crypto";
import { dbnameConninfo } from "../backup/dump_command.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import {
  assertNoPasswordLeak,
  backupYaml,
  databaseYaml,
  fingerprint,
  type Obj,
  restoreLeftovers,
  restoreYaml,
  SEED,
  waitPhase,
  writeForeignDump,
} from "./helpers/backup.ts";
import { readyReason, secretData } from "./helpers/fixtures.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function localStorage(name: string, path: string, extra = ""): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: BackupStorage
metadata:
  name: ${name}
spec:
  local:
    path: ${path}
  pathTemplate: "{{ .Namespace }}"
${extra}`;
}

/** Waits until the program has seen the BackupStorage's current spec (its status says so). */
async function storageSeen(env: TestEnv, name: string): Promise<void> {
  await waitFor(`BackupStorage ${name} to be observed`, async () => {
    const s = await env.getJson<
      { metadata: { generation: number }; status?: { observedGeneration?: number } }
    >("backupstorage", name);
    return s?.status?.observedGeneration === s?.metadata.generation;
  }, { timeoutMs: budget("ready") });
}

const rows = async (env: TestEnv, database: string): Promise<number> =>
  Number(
    await env.pg.superSql(
      "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
        "WHERE n.nspname = 'public'",
      { database: dbnameConninfo(database) },
    ),
  );

Deno.test({ name: "Restore: hostile tenants", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await env.kube.apply(env.clusterManifest("test-pg"));
  const dir = await Deno.makeTempDir({ prefix: "dbtether-tenancy-" });
  const importsDir = await Deno.makeTempDir({ prefix: "dbtether-imports-" });
  const evidence = await Deno.makeTempDir({ prefix: "dbtether-evidence-" });
  // A listener on another loopback address: a database name that libpq parsed as connection
  // parameters would send the admin's login here.
  const trap = Deno.listen({ hostname: "127.0.0.2", port: 0 });
  const trapPort = (trap.addr as Deno.NetAddr).port;
  let dialed = 0;
  const accepting = (async () => {
    try {
      for await (const c of trap) {
        dialed++;
        c.close();
      }
    } catch { /* closed */ }
  })();
  try {
    await env.kube.apply(localStorage("shared", dir));
    await env.kube.apply(
      localStorage("imports", importsDir, "  restores:\n    allowUnsigned: true\n"),
    );
    await storageSeen(env, "shared");
    await storageSeen(env, "imports");
    const na = await env.namespace("tenant-a");
    const nb = await env.namespace("tenant-b");

    await t.step("item 1: names that look like connection strings stay names", async () => {
      const names = [
        `host=127.0.0.2 port=${trapPort} dbname=x`,
        `a b=c 'd' "e" \\f`,
        "service=x",
        "passfile=/etc/passwd sslmode=disable",
      ];
      const results = await Promise.allSettled(names.map(async (dbName, i) => {
        const res = `hostile-${i}`;
        await env.kube.apply(databaseYaml(na, res, dbName));
        await waitPhase(env, "database", res, "Ready", { namespace: na });
        const seeded = await env.pg.psql(SEED, { database: dbnameConninfo(dbName) });
        assertEquals(seeded.code, 0, seeded.stderr);
        const want = await fingerprint(env, dbnameConninfo(dbName));
        await env.kube.apply(
          backupYaml(na, `${res}-plain`, res, "shared") + "---\n" +
            backupYaml(na, `${res}-custom`, res, "shared", "  format: custom\n"),
        );
        for (const format of ["plain", "custom"]) {
          await waitPhase(env, "backup", `${res}-${format}`, "Completed", {
            namespace: na,
            timeoutMs: budget("bulk"),
          });
        }
        for (const format of ["plain", "custom"]) {
          // Something to undo, then a drop-restore into the database itself.
          const changed = await env.pg.psql("INSERT INTO customers(name) VALUES ('later')", {
            database: dbnameConninfo(dbName),
          });
          assertEquals(changed.code, 0, changed.stderr);
          await env.kube.apply(restoreYaml(
            na,
            `${res}-${format}`,
            `    backupRef:\n      name: ${res}-${format}`,
            res,
            "  onConflict: drop\n",
          ));
          await waitPhase(env, "restore", `${res}-${format}`, "Completed", {
            namespace: na,
            timeoutMs: budget("bulk"),
          });
          assertEquals(await fingerprint(env, dbnameConninfo(dbName)), want, `${dbName} ${format}`);
        }
      }));
      assertEquals(dialed, 0, "a tool dialled the address in a database name");
      for (const r of results) if (r.status === "rejected") throw r.reason;
      await waitFor(
        "no restore leftovers",
        async () => (await restoreLeftovers(env)).length === 0,
        {
          timeoutMs: budget("react"),
        },
      );
    });

    // Tenant A: a database with data, a user, a backup. Tenant B: an empty database, a user.
    await env.kube.apply(
      databaseYaml(na, "a-db", "t4_a") + "---\n" + databaseYaml(nb, "b-db", "t4_b"),
    );
    await waitPhase(env, "database", "a-db", "Ready", { namespace: na });
    await waitPhase(env, "database", "b-db", "Ready", { namespace: nb });
    assertEquals((await env.pg.psql(SEED, { database: "t4_a" })).code, 0);
    const aData = await fingerprint(env, "t4_a");
    await env.kube.apply(
      backupYaml(na, "a-nightly", "a-db", "shared") + `---
apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: a-app, namespace: ${na} }
spec:
  database: { name: a-db, privileges: readwrite }
---
apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: b-app, namespace: ${nb} }
spec:
  database: { name: b-db, privileges: readwrite }
`,
    );
    const aBackup = await waitPhase(env, "backup", "a-nightly", "Completed", {
      namespace: na,
      timeoutMs: budget("backup"),
    });
    const aPath = aBackup.status!.path!;
    await waitPhase(env, "databaseuser", "a-app", "Ready", { namespace: na });
    await waitPhase(env, "databaseuser", "b-app", "Ready", { namespace: nb });
    const aUser = (await secretData(env, { namespace: na, name: "a-app-credentials" })) ?? {};
    const bUser = (await secretData(env, { namespace: nb, name: "b-app-credentials" })) ?? {};

    /**
     * A Restore in B into a fresh, empty Database of its own (so that each attack stands on its
     * own); returns the Restore once it is Completed or Failed, and the target's name.
     */
    const restoreInB = async (name: string, source: string): Promise<[Obj, string]> => {
      const db = `t_${name.replaceAll("-", "_")}`;
      await env.kube.apply(databaseYaml(nb, `to-${name}`, db));
      await waitPhase(env, "database", `to-${name}`, "Ready", { namespace: nb });
      await env.kube.apply(restoreYaml(nb, name, source, `to-${name}`));
      const r = await waitFor(`Restore ${name} to finish`, async () => {
        const r = await env.getJson<Obj>("restore", name, nb);
        return r?.status?.phase === "Completed" || r?.status?.phase === "Failed" ? r : undefined;
      }, { timeoutMs: budget("backup") });
      return [r, db];
    };
    const untouched = async (db: string) => {
      assertEquals(await rows(env, db), 0, "B's database got tables");
      assertEquals(await fingerprint(env, "t4_a"), aData, "A's database changed");
    };

    await t.step("item 4: B names A's key with source.path → refused", async () => {
      const [r, rDb] = await restoreInB(
        "steal-path",
        `    path: ${aPath}\n    storageRef:\n      name: shared`,
      );
      await untouched(rDb);
      assertEquals([r.status?.phase, readyReason(r)], [
        "Failed",
        "CrossNamespaceRestoreNotAllowed",
      ]);
      assert(r.status?.message?.includes(`namespace "${na}"`), r.status?.message ?? "");
      assert(r.status?.message?.includes("spec.restores.crossNamespace"), r.status?.message ?? "");
    });

    await t.step(
      "item 4: a forged Backup status in B does not help (backupRef, latestFrom)",
      async () => {
        // A Backup of a Database that does not exist never runs; its status is then forged.
        await env.kube.apply(backupYaml(nb, "forged", "no-such-db", "shared"));
        await waitFor(
          "the forged Backup to wait",
          async () =>
            readyReason(await env.getJson<Obj>("backup", "forged", nb)) === "DatabaseNotFound",
        );
        const patched = await env.kube.kubectl([
          "patch",
          "backup",
          "forged",
          "-n",
          nb,
          "--subresource=status",
          "--type=merge",
          "-p",
          JSON.stringify({
            status: {
              phase: "Completed",
              path: aPath,
              storageName: "shared",
              format: "plain",
              completedAt: "2030-01-01T00:00:00Z",
            },
          }),
        ]);
        assertEquals(patched.code, 0, patched.stderr);
        const [byRef, byRefDb] = await restoreInB(
          "steal-ref",
          "    backupRef:\n      name: forged",
        );
        await untouched(byRefDb);
        assertEquals(readyReason(byRef), "CrossNamespaceRestoreNotAllowed");
        const [byLatest, byLatestDb] = await restoreInB(
          "steal-latest",
          "    latestFrom:\n      databaseRef:\n        name: no-such-db",
        );
        await untouched(byLatestDb);
        assertEquals(readyReason(byLatest), "CrossNamespaceRestoreNotAllowed");
      },
    );

    await t.step("item 5: a manifest the operator did not sign is refused", async () => {
      await writeForeignDump(dir, `${nb}/unsigned.sql.gz`, "CREATE TABLE planted (x int);\n", {
        sourceNamespace: nb,
      });
      const [r, rDb] = await restoreInB(
        "unsigned",
        `    path: ${nb}/unsigned.sql.gz\n    storageRef:\n      name: shared`,
      );
      await untouched(rDb);
      assertEquals(readyReason(r), "BackupNotSigned");
      assert(r.status?.message?.includes("spec.restores.allowUnsigned"), r.status?.message ?? "");
    });

    await t.step(
      "item 5: a signed manifest changed to name B as its source is refused",
      async () => {
        const key = `${nb}/relabelled.sql.gz`;
        await Deno.copyFile(`${dir}/${aPath}`, `${dir}/${key}`);
        const m = JSON.parse(await Deno.readTextFile(`${dir}/${aPath}.manifest.json`));
        assert(m.signature?.value, "the operator's manifest is signed");
        m.source.namespace = nb;
        await Deno.writeTextFile(`${dir}/${key}.manifest.json`, JSON.stringify(m, null, 2));
        const [r, rDb] = await restoreInB(
          "relabelled",
          `    path: ${key}\n    storageRef:\n      name: shared`,
        );
        await untouched(rDb);
        assertEquals(readyReason(r), "SignatureInvalid");
      },
    );

    await t.step(
      "item 5: no meta-command of a dump runs, even an allowed unsigned one",
      async () => {
        const files = ["shell-ran", "o-file", "copy-ran"].map((f) => `${evidence}/${f}`);
        const dumps = [
          `CREATE TABLE before_meta (x int);\n\\! touch ${files[0]}\nCREATE TABLE after (x int);\n`,
          `CREATE TABLE before_meta (x int);\n\\o ${files[1]}\nSELECT 1;\n`,
          `CREATE TABLE before_meta (x int);\n\\copy (SELECT 1) TO PROGRAM 'touch ${files[2]}'\n`,
        ];
        for (const [i, sql] of dumps.entries()) {
          const key = await writeForeignDump(importsDir, `${nb}/meta-${i}.sql.gz`, sql, {
            sourceNamespace: nb,
          });
          const [r, rDb] = await restoreInB(
            `meta-${i}`,
            `    path: ${key}\n    storageRef:\n      name: imports`,
          );
          const ran = await Deno.stat(files[i]!).then(() => true, () => false);
          assert(!ran, `the dump's meta-command ran on the operator's host: ${files[i]} exists`);
          await untouched(rDb);
          assertEquals([r.status?.phase, readyReason(r)], ["Failed", "RestoreFailed"]);
          assert(
            r.status?.message?.includes("backslash commands are restricted"),
            r.status?.message ?? "",
          );
        }
      },
    );

    await t.step("item 5: the restore session cannot step out of the owner role", async () => {
      const attacks: [string, string][] = [
        ["set-role-none", "SET ROLE NONE;\nCREATE ROLE evil_login LOGIN;\n"],
        ["session-default", "SET SESSION AUTHORIZATION DEFAULT;\nCREATE ROLE evil_login2 LOGIN;\n"],
        ["other-password", `SET ROLE NONE;\nALTER ROLE "${aUser.username}" PASSWORD 'pwned';\n`],
        ["other-owner", `SET ROLE NONE;\nGRANT "t4_a_owner" TO "${bUser.username}";\n`],
        ["superuser", "SET ROLE NONE;\nCREATE ROLE evil_super SUPERUSER;\n"],
      ];
      for (const [name, sql] of attacks) {
        const key = await writeForeignDump(
          importsDir,
          `${nb}/${name}.sql.gz`,
          `CREATE TABLE mine (x int);\n${sql}`,
          { sourceNamespace: nb },
        );
        const [r, rDb] = await restoreInB(
          name,
          `    path: ${key}\n    storageRef:\n      name: imports`,
        );
        const evil = await env.pg.superSql(
          "SELECT count(*) FROM pg_roles WHERE rolname IN ('evil_login', 'evil_login2', 'evil_super')",
        );
        assertEquals(evil.trim(), "0", `${name}: a role was created`);
        const aLogin = await env.pg.psql("SELECT 1", {
          user: aUser.username!,
          password: aUser.password!,
          database: "t4_a",
        });
        assertEquals(aLogin.code, 0, `${name}: A's user cannot log in any more: ${aLogin.stderr}`);
        const member = await env.pg.superSql(
          `SELECT pg_has_role('${bUser.username}', 't4_a_owner', 'MEMBER')`,
        );
        assertEquals(member.trim(), "f", `${name}: B's user became a member of A's owner role`);
        await untouched(rDb);
        assertEquals([r.status?.phase, readyReason(r)], ["Failed", "RestoreFailed"], name);
      }
    });

    await t.step(
      "what a dump creates after SET ROLE NONE still belongs to the owner role",
      async () => {
        const key = await writeForeignDump(
          importsDir,
          `${nb}/stepped-out.sql.gz`,
          "SET ROLE NONE;\nCREATE TABLE stepped_out (x int);\nRESET ROLE;\nCREATE TABLE kept (x int);\n",
          { sourceNamespace: nb },
        );
        const [r, db] = await restoreInB(
          "stepped-out",
          `    path: ${key}\n    storageRef:\n      name: imports`,
        );
        assertEquals(r.status?.phase, "Completed", r.status?.message ?? "");
        const owners = await env.pg.superSql(
          "SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class " +
            "WHERE relname IN ('stepped_out', 'kept')",
          { database: db },
        );
        assertEquals(owners.trim(), `${db}_owner`);
        await waitFor(
          "no restore leftovers",
          async () => (await restoreLeftovers(env)).length === 0,
          {
            timeoutMs: budget("react"),
          },
        );
      },
    );

    await t.step("item 4: with the storage's grant, B restores A's backup", async () => {
      const patched = await env.kube.kubectl([
        "patch",
        "backupstorage",
        "shared",
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { restores: { crossNamespace: { names: [nb] } } } }),
      ]);
      assertEquals(patched.code, 0, patched.stderr);
      await storageSeen(env, "shared");
      const [r, rDb] = await restoreInB(
        "granted",
        `    path: ${aPath}\n    storageRef:\n      name: shared`,
      );
      assertEquals(r.status?.phase, "Completed", r.status?.message ?? "");
      assertEquals(await fingerprint(env, rDb), aData);
    });

    await t.step("the signing key is the operator's, and appears nowhere", async () => {
      const s = await env.getJson<{ data?: Record<string, string> }>(
        "secret",
        "dbtether-backup-signing",
        "default",
      );
      const b64 = s?.data?.["signing-key"];
      assert(b64, "the operator created its signing key");
      const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      assertEquals(raw.length, 32);
      const m = JSON.parse(await Deno.readTextFile(`${dir}/${aPath}.manifest.json`));
      const id = createHash("sha256").update(raw).digest("hex").slice(0, 16);
      assertEquals(m.signature.keyId, id);
      const hex = Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
      await assertNoPasswordLeak(env, { secrets: [b64, hex] });
      await waitFor(
        "no restore leftovers",
        async () => (await restoreLeftovers(env)).length === 0,
        {
          timeoutMs: budget("react"),
        },
      );
    });
  } finally {
    trap.close();
    await accepting;
    for (const d of [dir, importsDir, evidence]) {
      await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  }
});
