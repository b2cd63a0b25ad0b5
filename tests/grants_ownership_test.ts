/**
 * Issue 7 item 9: a user keeps every privilege on the tables it owns, and grants made by others
 * stay, across reconciles (dbtether manages only the grants it makes). Item 14 (part): a table
 * whose name holds a control character, which any role that may create tables can make, no
 * longer stops the Database: it is quoted like any other and every table gets its grants.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { annotate, mergePatch, type Obj, readyOf, runsAs, secretData } from "./helpers/fixtures.ts";
import { logMark, resource } from "./helpers/tenant.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
type Creds = { user: string; password: string; database: string };

async function credentials(env: TestEnv, name: string, ns: string): Promise<Creds> {
  await env.waitPhase("databaseuser", name, "Ready", { namespace: ns });
  const d = (await secretData(env, { namespace: ns, name: `${name}-credentials` }))!;
  return { user: d.username!, password: d.password!, database: d.database! };
}

/** Changes the user's spec and waits until a reconcile of that generation wrote its status. */
async function reconcileUser(env: TestEnv, name: string, ns: string, limit: number) {
  await mergePatch(env, { kind: "databaseuser", namespace: ns, name }, {
    spec: { connectionLimit: limit },
  });
  await waitFor(`DatabaseUser ${name} reconciled with connectionLimit ${limit}`, async () => {
    const u = await env.getJson<Obj>("databaseuser", name, ns);
    return u?.status?.phase === "Ready" && u.status.observedGeneration === u.metadata.generation;
  });
  const limitNow = await env.pg.superSql(
    `SELECT rolconnlimit FROM pg_roles WHERE rolname = '${name}'`,
  );
  assertEquals(limitNow.trim(), String(limit), "the reconcile reached the server");
}

Deno.test(
  { name: "Grants: owners keep their privileges; odd table names are granted", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: true, program: true });
    const ns = await env.namespace("grants");
    await env.kube.apply(env.clusterManifest("main"));
    await env.kube.apply(resource("Database", {
      name: "shop",
      ns,
      spec: "clusterRef: { name: main }\ndeletionPolicy: Delete\n",
    }));
    await env.kube.apply(resource("DatabaseUser", {
      name: "mig",
      ns,
      spec: "databaseRef: { name: shop }\nprivileges: admin\n",
    }));
    await env.kube.apply(resource("DatabaseUser", {
      name: "ro",
      ns,
      spec: "databaseRef: { name: shop }\nprivileges: readonly\n",
    }));
    const mig = await credentials(env, "mig", ns);
    const ro = await credentials(env, "ro", ns);

    await t.step("a table its user created as itself keeps all of its privileges", async () => {
      // The migration tool steps out of the owner role (SET ROLE NONE: RESET ROLE would go back to
      // the role setting, the owner role) and creates a table of its own.
      assert(
        await runsAs(env.pg, mig, {
          sql: "SET ROLE NONE; CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)",
        }),
      );
      // A third party with GRANT OPTION hands SELECT on it to the readonly user.
      await env.pg.superSql("CREATE ROLE helper LOGIN PASSWORD 'helper-pw'");
      assert(
        await runsAs(env.pg, mig, {
          sql: "SET ROLE NONE; GRANT SELECT ON orders TO helper WITH GRANT OPTION",
        }),
      );
      await env.pg.superSql("GRANT CONNECT ON DATABASE shop TO helper");
      assert(
        await runsAs(env.pg, { user: "helper", password: "helper-pw", database: "shop" }, {
          sql: `GRANT SELECT ON orders TO ro`,
        }),
      );
      const mark = await logMark(env.pg);
      for (const limit of [5, 6]) {
        await reconcileUser(env, "mig", ns, limit);
        await reconcileUser(env, "ro", ns, limit);
      }
      assert(
        await runsAs(env.pg, mig, {
          sql: "SET ROLE NONE; TRUNCATE orders; INSERT INTO orders VALUES (2)",
        }),
        "TRUNCATE still works for the owner",
      );
      assert(
        await runsAs(env.pg, ro, { sql: "SELECT * FROM orders" }),
        "the third party's grant stays",
      );
      assertEquals(
        (await env.pg.superSql(
          "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'orders'",
          {
            database: "shop",
          },
        )).trim(),
        "mig",
      );
      const revokes = (await env.pg.readLog()).slice(mark).split("\n").filter((l) =>
        /REVOKE/i.test(l) && /orders/.test(l)
      );
      assertEquals(revokes, []);
    });

    await t.step("a table named with a control character does not stop the Database", async () => {
      // What a hostile admin-level user can do: own tables and take readonly's access away.
      const made = await env.pg.psql(
        'SET ROLE NONE;\nCREATE TABLE "a\nb" (id int);\nCREATE TABLE plain_t (id int);\n' +
          'REVOKE SELECT ON "a\nb", plain_t FROM shop_readonly;\n',
        mig,
      );
      assertEquals(made.code, 0, made.stderr);
      assert(!(await runsAs(env.pg, ro, { sql: "SELECT * FROM plain_t" })));
      await annotate(env, { kind: "database", namespace: ns, name: "shop" }, "test/touch=1");
      await waitFor(
        "readonly can read plain_t again",
        () => runsAs(env.pg, ro, { sql: "SELECT * FROM plain_t" }),
      );
      assert(
        await runsAs(env.pg, ro, { sql: 'SELECT * FROM "a\nb"' }),
        "the odd table got its grant too",
      );
      const d = await env.getJson<Obj>("database", "shop", ns);
      assertEquals([d?.status?.phase, readyOf(d)?.reason], ["Ready", "DatabaseReady"]);
    });
  },
);
