/**
 * Schemas of a Database (spec.schemas, spec.publicSchema) through the real `dbtether run`, a
 * real apiserver and a real PostgreSQL whose admin is not superuser, checked as a user would:
 * log in with the Secret's password and try the statement. Also as a hostile tenant: names
 * with quotes and semicolons are quoted exactly, reserved or too long names never reach the
 * server, and a schema of another tenant is not taken over.
 */
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { secretData, waitReason, waitRefused } from "./helpers/fixtures.ts";
import { resource } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const WEIRD = 'we"ird; DROP TABLE x; --';

type Login = { user: string; password: string; database: string };

function shop(ns: string, schemas: string, extra = ""): string {
  const spec = `clusterRef: { name: main }\ndeletionPolicy: Delete\n${extra}schemas:\n${schemas}`;
  return resource("Database", { name: "shop", ns, spec });
}

async function login(env: TestEnv, ns: string, name: string): Promise<Login> {
  await env.waitPhase("databaseuser", name, "Ready", { namespace: ns });
  const d = (await secretData(env, { namespace: ns, name: `${name}-credentials` })) ?? {};
  return { user: d.username!, password: d.password!, database: "shop" };
}

/** Logs each user in with its Secret; `allowed` returns the output, `denied` wants a refusal. */
async function logins(env: TestEnv, ns: string, names: readonly string[]) {
  const creds: Record<string, Login> = {};
  for (const n of names) creds[n] = await login(env, ns, n);
  const as = (who: string, sql: string) => env.pg.psql(sql, creds[who]!);
  const allowed = async (who: string, sql: string) => {
    const r = await as(who, sql);
    assertEquals(r.code, 0, `${who}: ${sql}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const denied = async (who: string, sql: string) => {
    const r = await as(who, sql);
    assert(r.code !== 0, `${who} may run ${sql}: ${r.stdout}`);
    assert(/permission denied/.test(r.stderr), `${who}: ${sql}: ${r.stderr}`);
  };
  return { as, allowed, denied };
}

/** Rows of a superuser query in `shop`, one string per line. */
async function rows(env: TestEnv, sql: string): Promise<string[]> {
  return (await env.pg.superSql(sql, { database: "shop" })).split("\n").filter((l) => l);
}

Deno.test({ name: "Database schemas: created, owned, released, dropped", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  const ns = await env.namespace("schemas");
  await env.kube.apply(env.clusterManifest("main"));

  await t.step("reserved, system and too long schema names are refused at admission", async () => {
    for (const name of ["pg_evil", "PG_x", "public", "information_schema", "s".repeat(64)]) {
      await assertRejects(
        () => env.kube.apply(shop(ns, `  - name: '${name}'\n`)),
        Error,
        "schema",
        name,
      );
    }
    assertEquals(await env.getJson("database", "shop", ns), undefined);
  });

  const all = [
    "  - name: app\n",
    "  - name: reporting\n    owner: { level: readwrite }\n    deletionPolicy: Delete\n",
    `  - name: '${WEIRD}'\n`,
  ].join("");
  await env.kube.apply(shop(ns, all, "publicSchema: lockdown\n"));
  await env.waitPhase("database", "shop", "Ready", { namespace: ns });

  await t.step(
    "each schema exists with its owner and claim, names exactly as written",
    async () => {
      assertEquals(
        await rows(
          env,
          "SELECT nspname || '|' || pg_get_userbyid(nspowner) || '|' || " +
            "coalesce(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace " +
            "WHERE nspname IN ('app', 'reporting', 'x') OR nspname LIKE 'we%' ORDER BY 1",
        ),
        [
          `app|shop_owner|dbtether:Schema/${ns}/shop`,
          `reporting|shop_readwrite|dbtether:SchemaDelete/${ns}/shop`,
          `${WEIRD}|shop_owner|dbtether:Schema/${ns}/shop`,
        ],
      );
    },
  );

  for (const [n, p] of [["ro", "readonly"], ["rw", "readwrite"], ["adm", "admin"]]) {
    await env.kube.apply(resource("DatabaseUser", {
      name: n!,
      ns,
      spec: `databaseRef: { name: shop }\nprivileges: ${p}\n`,
    }));
  }
  const { allowed, denied } = await logins(env, ns, ["ro", "rw", "adm"]);

  await t.step("the database's levels work in the new schemas", async () => {
    await allowed("adm", `CREATE TABLE app.items (id int); INSERT INTO app.items VALUES (1)`);
    assertEquals(await allowed("ro", "SELECT id FROM app.items"), "1");
    await denied("ro", "INSERT INTO app.items VALUES (2)");
    await denied("rw", "CREATE TABLE app.rw_t (id int)");
    // reporting is owned by the readwrite role: its members create there.
    await allowed("rw", "CREATE TABLE reporting.daily (d date)");
    await allowed("adm", `CREATE TABLE "we""ird; DROP TABLE x; --".t (id int)`);
    assertEquals(await allowed("ro", `SELECT count(*) FROM "we""ird; DROP TABLE x; --".t`), "0");
  });

  await t.step("publicSchema lockdown: PUBLIC has neither USAGE nor CREATE on public", async () => {
    assertEquals(
      await rows(
        env,
        "SELECT a.privilege_type FROM pg_namespace n, " +
          "aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a " +
          "WHERE n.nspname = 'public' AND a.grantee = 0",
      ),
      [],
    );
    await allowed("adm", "CREATE TABLE public.p (id int)");
    assertEquals(await allowed("ro", "SELECT count(*) FROM public.p"), "0");
  });

  await t.step(
    "Delete on a non-empty schema: refused by RESTRICT, the reason in status",
    async () => {
      await env.kube.apply(
        shop(ns, `  - name: app\n  - name: '${WEIRD}'\n`, "publicSchema: lockdown\n"),
      );
      const x = await waitReason(env, {
        kind: "database",
        namespace: ns,
        name: "shop",
        reason: "SqlFailed",
      });
      const ready = x.status?.conditions?.find((c) => c.type === "Ready");
      assert(
        /DROP SCHEMA IF EXISTS "reporting" RESTRICT/.test(ready?.message ?? ""),
        ready?.message,
      );
      assertEquals(await rows(env, "SELECT count(*) FROM reporting.daily"), ["0"]);
    },
  );

  await t.step("emptied, it is dropped; a Retain schema removed is released and kept", async () => {
    await allowed("rw", "DROP TABLE reporting.daily");
    await env.waitPhase("database", "shop", "Ready", { namespace: ns });
    assertEquals(await rows(env, "SELECT 1 FROM pg_namespace WHERE nspname = 'reporting'"), []);
    await env.kube.apply(shop(ns, `  - name: '${WEIRD}'\n`, "publicSchema: lockdown\n"));
    await waitForComment(env, "app", "");
    assertEquals(await rows(env, "SELECT id FROM app.items"), ["1"]);
  });
});

async function waitForComment(env: TestEnv, schema: string, want: string): Promise<void> {
  await waitFor(`schema ${schema} comment ${JSON.stringify(want)}`, async () => {
    const r = await rows(
      env,
      `SELECT coalesce(obj_description(oid, 'pg_namespace'), '') || '.' FROM pg_namespace ` +
        `WHERE nspname = '${schema}'`,
    );
    return r[0] === `${want}.`;
  }, { timeoutMs: budget("ready") });
}

Deno.test({ name: "a schema of another tenant is not taken over", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  const ns = await env.namespace("schemas-own");
  await env.kube.apply(env.clusterManifest("main"));
  await env.kube.apply(shop(ns, "  - name: app\n"));
  await env.waitPhase("database", "shop", "Ready", { namespace: ns });
  // As if another namespace's user (a role with its marker) had made a schema here, and an
  // admin had made one by hand.
  await env.pg.superSql(
    "CREATE ROLE tenant2 NOLOGIN; " +
      "COMMENT ON ROLE tenant2 IS 'dbtether:DatabaseUser/other-ns/tenant2'; " +
      "CREATE SCHEMA theirs AUTHORIZATION tenant2; CREATE TABLE theirs.secret (v text); " +
      "CREATE SCHEMA handmade; CREATE TABLE handmade.t (v text)",
    { database: "shop" },
  );
  const state = () =>
    rows(
      env,
      "SELECT nspname || '|' || pg_get_userbyid(nspowner) || '|' || " +
        "coalesce(obj_description(oid, 'pg_namespace'), '') || '|' || coalesce(nspacl::text, '') " +
        "FROM pg_namespace WHERE nspname IN ('theirs', 'handmade') ORDER BY 1",
    );
  const before = await state();

  for (
    const [schema, reason] of [["theirs", "SchemaClaimedByOther"], [
      "handmade",
      "SchemaExistsUnmanaged",
    ]]
  ) {
    await t.step(`${schema}: refused with ${reason}, nothing changed`, async () => {
      await env.kube.apply(shop(ns, `  - name: app\n  - name: ${schema}\n`));
      const x = await waitRefused(env, {
        kind: "database",
        namespace: ns,
        name: "shop",
        reason: reason!,
      });
      const msg = x.status?.conditions?.find((c) => c.type === "Ready")?.message ?? "";
      assert(msg.includes(`"${schema}"`), msg);
      assertEquals(await state(), before);
    });
  }

  await t.step("removed from the spec again, the Database is Ready", async () => {
    await env.kube.apply(shop(ns, "  - name: app\n"));
    await env.waitPhase("database", "shop", "Ready", { namespace: ns });
    assertEquals(await state(), before);
  });
});

function schemaUser(ns: string, name: string, entry: string): string {
  return resource("DatabaseUser", { name, ns, spec: `databases:\n  - name: shop\n${entry}` });
}

Deno.test({
  name: "per-schema privileges: a migrator, a service, a schema admin and an analyst",
  ...opts,
}, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  const ns = await env.namespace("schema-users");
  await env.kube.apply(env.clusterManifest("main"));
  await env.kube.apply(
    shop(ns, "  - name: app\n  - name: reporting\n", "publicSchema: lockdown\n"),
  );
  await env.waitPhase("database", "shop", "Ready", { namespace: ns });
  const schemas = (list: string) => `    schemas:\n${list}`;
  await env.kube.apply(schemaUser(ns, "migrator", "    privileges: admin\n"));
  await env.kube.apply(schemaUser(ns, "ro", "    privileges: readonly\n"));
  await env.kube.apply(
    schemaUser(ns, "svc", schemas("      - { name: app, privileges: readwrite }\n")),
  );
  await env.kube.apply(
    schemaUser(ns, "rep", schemas("      - { name: reporting, privileges: admin }\n")),
  );
  await env.kube.apply(
    schemaUser(ns, "analyst", schemas("      - { name: reporting, privileges: readonly }\n")),
  );
  const { as, allowed, denied } = await logins(env, ns, [
    "migrator",
    "ro",
    "svc",
    "rep",
    "analyst",
  ]);

  await t.step(
    "tables the migrator creates later in app: the service writes, no one else",
    async () => {
      await allowed("migrator", "CREATE TABLE app.orders (id serial PRIMARY KEY, v text)");
      assertEquals(
        await allowed("svc", "INSERT INTO app.orders (v) VALUES ('a') RETURNING id"),
        "1",
      );
      assertEquals(await allowed("svc", "SELECT v FROM app.orders"), "a");
      await denied("svc", "CREATE TABLE app.svc_t (id int)");
      await denied("analyst", "SELECT * FROM app.orders");
      await denied("rep", "SELECT * FROM app.orders");
    },
  );

  await t.step(
    "tables the schema admin creates later in reporting: the analyst reads",
    async () => {
      await allowed(
        "rep",
        "CREATE TABLE reporting.daily (d date); INSERT INTO reporting.daily VALUES ('2026-12-02')",
      );
      assertEquals(await allowed("analyst", "SELECT d FROM reporting.daily"), "2026-12-02");
      await denied("analyst", "INSERT INTO reporting.daily VALUES ('2026-12-03')");
      await denied("analyst", "CREATE TABLE reporting.a (id int)");
      await denied("svc", "SELECT * FROM reporting.daily");
      await denied("rep", "CREATE TABLE app.rep_t (id int)");
      // A database-wide reader too: the database's groups get the schema admin's objects.
      assertEquals(await allowed("ro", "SELECT count(*) FROM reporting.daily"), "1");
    },
  );

  await t.step("and what the migrator creates later in reporting", async () => {
    await allowed(
      "migrator",
      "CREATE TABLE reporting.summary (n int); INSERT INTO reporting.summary VALUES (7)",
    );
    assertEquals(await allowed("analyst", "SELECT n FROM reporting.summary"), "7");
  });

  await t.step(
    "functions the schema admin and the migrator create later where PUBLIC may not EXECUTE",
    async () => {
      // As a platform team hardening the server does for the roles that create objects.
      const rep = await allowed("rep", "SELECT current_user");
      for (const creator of [rep, "shop_owner"]) {
        await env.pg.superSql(
          `ALTER DEFAULT PRIVILEGES FOR ROLE "${creator}" REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`,
          { database: "shop" },
        );
      }
      const fn = (name: string) =>
        `CREATE FUNCTION reporting.${name}() RETURNS bigint LANGUAGE sql STABLE ` +
        "AS 'SELECT sum(n) FROM reporting.summary'";
      await allowed("rep", fn("total"));
      await allowed("migrator", fn("total_m"));
      for (const f of ["reporting.total()", "reporting.total_m()"]) {
        assertEquals(await allowed("analyst", `SELECT ${f}`), "7");
        assertEquals(await allowed("ro", `SELECT ${f}`), "7");
        await denied("svc", `SELECT ${f}`);
      }
    },
  );

  await t.step("search_path follows the schemas: unqualified names resolve there", async () => {
    assertEquals(await allowed("analyst", "SHOW search_path"), "reporting");
    assertEquals(await allowed("analyst", "SELECT n FROM summary"), "7");
    assertEquals(await allowed("svc", "SELECT count(*) FROM orders"), "1");
  });

  await t.step("a downgrade revokes: the schema admin made readonly cannot create", async () => {
    await env.kube.apply(
      schemaUser(ns, "rep", schemas("      - { name: reporting, privileges: readonly }\n")),
    );
    await waitFor("rep loses CREATE on reporting", async () => {
      const r = await as("rep", "CREATE TABLE reporting.after (id int)");
      return r.code !== 0 && /permission denied/.test(r.stderr);
    }, { timeoutMs: budget("ready") });
    assertEquals(await allowed("rep", "SELECT n FROM reporting.summary"), "7");
    await denied("rep", "INSERT INTO reporting.summary VALUES (8)");
  });
});

/** The SchemaOwnersReady condition of `shop` once its message matches `re`. */
async function waitOwners(env: TestEnv, ns: string, re: RegExp) {
  type Cond = { type: string; status: string; reason: string; message: string };
  type Db = { status?: { phase?: string; conditions?: Cond[] } };
  return await waitFor(`shop SchemaOwnersReady ${re}`, async () => {
    const x = await env.getJson<Db>("database", "shop", ns);
    const c = x?.status?.conditions?.find((c) => c.type === "SchemaOwnersReady");
    return c && re.test(c.message) ? { db: x!, c } : undefined;
  }, { timeoutMs: budget("ready") });
}

Deno.test({ name: "a schema owned by a DatabaseUser", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  const ns = await env.namespace("schema-owner");
  await env.kube.apply(env.clusterManifest("main"));
  const owned = (entries: string) =>
    shop(ns, `  - name: app\n${entries}`, "publicSchema: lockdown\n");
  await env.kube.apply(owned(""));
  await env.waitPhase("database", "shop", "Ready", { namespace: ns });
  await env.kube.apply(schemaUser(ns, "bookkeeper", "    privileges: readwrite\n"));
  await env.kube.apply(schemaUser(ns, "ro", "    privileges: readonly\n"));
  // Names no Database of this namespace that is called shop.
  await env.kube.apply(resource("DatabaseUser", {
    name: "stranger",
    ns,
    spec: "databaseRef: { name: elsewhere }\n",
  }));
  // A role another namespace's user made; this tenant's user takes its name.
  await env.pg.superSql(
    "CREATE ROLE intruder_target NOLOGIN; " +
      "COMMENT ON ROLE intruder_target IS 'dbtether:DatabaseUser/other-ns/victim'",
  );
  await env.kube.apply(resource("DatabaseUser", {
    name: "thief",
    ns,
    spec: "username: intruder_target\ndatabases:\n  - name: shop\n    privileges: readonly\n",
  }));
  const { allowed, denied } = await logins(env, ns, ["bookkeeper", "ro"]);
  const owner = (u: string) => `    owner: { databaseUser: ${u} }\n`;
  await env.kube.apply(owned(
    `  - name: ledger\n${owner("bookkeeper")}    deletionPolicy: Delete\n` +
      `  - name: stray\n${owner("stranger")}  - name: stolen\n${owner("thief")}`,
  ));
  await t.step("admission: owner takes exactly one of level and databaseUser", async () => {
    for (const o of ["{ level: owner, databaseUser: bookkeeper }", "{}"]) {
      await assertRejects(
        () => env.kube.apply(owned(`  - name: both\n    owner: ${o}\n`)),
        Error,
        "exactly one of level or databaseUser",
      );
    }
  });
  const ownerOf = async (schema: string) =>
    (await rows(env, `SELECT nspowner::regrole FROM pg_namespace WHERE nspname = '${schema}'`))[0];

  await t.step("the user's role owns the schema and creates there; a reader cannot", async () => {
    await waitFor("ledger owned by bookkeeper", async () => {
      return await ownerOf("ledger") === "bookkeeper";
    }, { timeoutMs: budget("ready") });
    await allowed(
      "bookkeeper",
      "CREATE TABLE ledger.entries (id int); INSERT INTO ledger.entries VALUES (1)",
    );
    await denied("ro", "CREATE TABLE ledger.ro_t (id int)");
    // The database's readers get what the owner creates later.
    assertEquals(await allowed("ro", "SELECT id FROM ledger.entries"), "1");
  });

  await t.step(
    "a user not naming this Database, or with another's role: the schema waits, with why",
    async () => {
      const { db, c } = await waitOwners(env, ns, /stranger.*thief/);
      assertEquals([c.status, c.reason], ["False", "SchemaOwnerNotReady"]);
      assert(c.message.includes('"stranger": it does not list Database "shop"'), c.message);
      assert(
        c.message.includes('"thief": role "intruder_target" was not created by dbtether'),
        c.message,
      );
      assertEquals(db.status?.phase, "Ready");
      assertEquals(
        await rows(env, "SELECT 1 FROM pg_namespace WHERE nspname IN ('stray', 'stolen')"),
        [],
      );
      assertEquals(
        (await env.pg.superSql(
          "SELECT shobj_description(oid, 'pg_authid') || '|' || rolcanlogin FROM pg_roles " +
            "WHERE rolname = 'intruder_target'",
        )).trim(),
        "dbtether:DatabaseUser/other-ns/victim|false",
      );
    },
  );

  await t.step("the owner deleted: the schema stays, owned by shop_owner, reported", async () => {
    await env.kube.kubectl(["delete", "databaseuser", "bookkeeper", "-n", ns, "--timeout=60s"], {
      check: true,
    });
    const { c } = await waitOwners(env, ns, /"bookkeeper": it does not exist/);
    assertEquals(c.reason, "SchemaOwnerNotReady");
    assertEquals(await ownerOf("ledger"), "shop_owner");
    assertEquals(await rows(env, "SELECT id FROM ledger.entries"), ["1"]);
    assertEquals(await rows(env, "SELECT 1 FROM pg_roles WHERE rolname = 'bookkeeper'"), []);
  });
});
