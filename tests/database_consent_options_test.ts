/**
 * The Database options that need the platform team's consent or touch other tenants, against a
 * real apiserver and PostgreSQL (admin not superuser): a tablespace only where the DBCluster lists
 * it and the admin was granted CREATE on it, a template database only where it allows them (and still dropped on deletion),
 * ALLOW_CONNECTIONS kept in line, extensions with a schema and a version updated with ALTER
 * EXTENSION ... UPDATE, versions and extensions the server lacks refused with a reason, and an
 * adopted database whose encoding differs from the spec reported, never changed.
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import {
  conditionOf,
  createTablespace,
  type Obj,
  readyOf,
  waitReason,
} from "./helpers/fixtures.ts";
import { warnings } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function database(ns: string, name: string, spec: string, annotations = ""): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata:
  name: ${name}
  namespace: ${ns}
${annotations}spec:
  clusterRef: { name: main }
  deletionPolicy: Delete
${spec}`;
}

async function one(env: TestEnv, sql: string, database?: string): Promise<string> {
  return (await env.pg.superSql(sql, database ? { database } : {})).trim();
}

Deno.test(
  { name: "Database options with consent: tablespace, template, connections, extensions", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: true, program: true });
    const ns = await env.namespace("dbconsent");
    const cluster = (extra: string) =>
      env.kube.apply(env.clusterManifest("main", {
        extraSpec: `  allowedTablespaces: [ts_ok, ts_nocreate]\n` +
          `  adoption:\n    allowedNamespaces:\n      names: [${ns}]\n${extra}`,
      }));
    await cluster("");
    await createTablespace(env.pg, "ts_ok");
    await createTablespace(env.pg, "ts_other");
    await createTablespace(env.pg, "ts_nocreate", { grant: false });
    const ready = (name: string) =>
      env.waitPhase("database", name, "Ready", { namespace: ns, timeoutMs: budget("ready") });
    const refused = (name: string, reason: string) =>
      waitReason<Obj>(env, { kind: "database", namespace: ns, name, reason });
    const count = (db: string) =>
      one(env, `SELECT count(*) FROM pg_database WHERE datname = '${db}'`);

    await t.step(
      "a listed tablespace is used; another, or a hostile name, is refused",
      async () => {
        await env.kube.apply(database(ns, "tsok", "  databaseName: c_tsok\n  tablespace: ts_ok\n"));
        await env.kube.apply(
          database(ns, "tsother", "  databaseName: c_tsother\n  tablespace: ts_other\n"),
        );
        await env.kube.apply(database(
          ns,
          "tsbad",
          `  databaseName: c_tsbad\n  tablespace: "ts_ok\\"; DROP DATABASE c_tsok; --"\n`,
        ));
        await ready("tsok");
        assertEquals(
          await one(
            env,
            "SELECT t.spcname FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace " +
              "WHERE d.datname = 'c_tsok'",
          ),
          "ts_ok",
        );
        const other = await refused("tsother", "TablespaceNotAllowed");
        assertMatch(
          readyOf(other)!.message,
          /"ts_other".*does not list it in spec\.allowedTablespaces/,
        );
        await refused("tsbad", "TablespaceNotAllowed");
        assertEquals(await count("c_tsother"), "0");
        assertEquals(await count("c_tsbad"), "0");
        assertEquals(await count("c_tsok"), "1");
        const r = await env.kube.kubectl(["apply", "-f", "-"], {
          stdin: database(ns, "tsok", "  databaseName: c_tsok\n  tablespace: ts_other\n"),
        });
        assert(r.code !== 0);
        assertMatch(r.stderr, /tablespace is immutable/);
      },
    );

    await t.step(
      "a listed tablespace without CREATE for the admin: the server's refusal",
      async () => {
        await env.kube.apply(
          database(ns, "tsnogrant", "  databaseName: c_tsnogrant\n  tablespace: ts_nocreate\n"),
        );
        const d = await refused("tsnogrant", "PermissionDenied");
        assertMatch(readyOf(d)!.message, /permission denied for tablespace ts_nocreate/);
        assertEquals(await count("c_tsnogrant"), "0");
      },
    );

    await t.step(
      "isTemplate only with the DBCluster's consent; the template still drops",
      async () => {
        await env.kube.apply(database(ns, "tpl", "  databaseName: c_tpl\n  isTemplate: true\n"));
        const no = await refused("tpl", "TemplateNotAllowed");
        assertMatch(readyOf(no)!.message, /spec\.allowTemplateDatabases/);
        assertEquals(await count("c_tpl"), "0");
        await cluster("  allowTemplateDatabases: true\n");
        await ready("tpl");
        assertEquals(
          await one(env, "SELECT datistemplate FROM pg_database WHERE datname = 'c_tpl'"),
          "t",
        );
        // What a template means: a role with CREATEDB that owns nothing of it can clone it.
        await env.pg.superSql("CREATE ROLE c_cloner LOGIN CREATEDB");
        // dbtether keeps no session in a template; a reconcile running just then may hold one.
        await waitFor("the clone", async () => {
          const r = await env.pg.superSql(
            "SET ROLE c_cloner; CREATE DATABASE c_clone TEMPLATE c_tpl",
          ).then(() => "", (e: Error) => e.message);
          if (r && !/being accessed by other users/.test(r)) throw new Error(r);
          return r === "";
        }, { timeoutMs: budget("react") });
        assertEquals(await count("c_clone"), "1");
        await env.pg.superSql("DROP DATABASE c_clone; DROP ROLE c_cloner");
        await env.kube.kubectl(["delete", "database", "tpl", "-n", ns, "--wait=false"], {
          check: true,
        });
        await waitFor("the template dropped", async () => (await count("c_tpl")) === "0", {
          timeoutMs: budget("ready"),
        });
      },
    );

    await t.step("allowConnections false stops logins, and true gives them back", async () => {
      await env.kube.apply(
        database(ns, "closed", "  databaseName: c_closed\n  allowConnections: false\n"),
      );
      await ready("closed");
      assertEquals(
        await one(env, "SELECT datallowconn FROM pg_database WHERE datname = 'c_closed'"),
        "f",
      );
      const denied = await env.pg.psql("SELECT 1", { database: "c_closed" });
      assert(denied.code !== 0);
      assertMatch(denied.stderr, /not currently accepting connections/);
      await env.kube.apply(
        database(ns, "closed", "  databaseName: c_closed\n  allowConnections: true\n"),
      );
      await waitFor(
        "connections allowed",
        async () =>
          (await one(env, "SELECT datallowconn FROM pg_database WHERE datname = 'c_closed'")) ===
            "t",
        { timeoutMs: budget("react") },
      );
    });

    await t.step("an extension in a schema at a version, then UPDATE TO the next", async () => {
      const spec = (version: string) =>
        "  databaseName: c_ext\n  schemas: [{ name: app }]\n  extensionOptions:\n" +
        `    - { name: hstore, schema: app, version: "${version}" }\n`;
      const ext = () =>
        one(
          env,
          "SELECT e.extversion || ' ' || n.nspname FROM pg_extension e JOIN pg_namespace n " +
            "ON n.oid = e.extnamespace WHERE e.extname = 'hstore'",
          "c_ext",
        );
      await env.kube.apply(database(ns, "ext", spec("1.4")));
      await ready("ext");
      assertEquals(await ext(), "1.4 app");
      assertEquals(
        await one(env, "SET search_path = app; SELECT 'a=>1'::hstore -> 'a'", "c_ext"),
        "1",
      );
      await env.kube.apply(database(ns, "ext", spec("1.5")));
      await waitFor("the update", async () => (await ext()) === "1.5 app", {
        timeoutMs: budget("react"),
      });
      await env.kube.apply(database(ns, "ext", spec("9.9")));
      const bad = await refused("ext", "ExtensionFailed");
      assertMatch(readyOf(bad)!.message, /hstore: version "9\.9" is not available on the server/);
      assertEquals(await ext(), "1.5 app");
    });

    await t.step("an extension the server lacks, or a foreign schema, gives a reason", async () => {
      await env.kube.apply(database(
        ns,
        "noext",
        '  databaseName: c_noext\n  extensionOptions:\n    - { name: "no\'pe" }\n',
      ));
      const d = await refused("noext", "ExtensionFailed");
      assertMatch(readyOf(d)!.message, /no'pe: it is not available on the server/);
      const r = await env.kube.kubectl(["apply", "-f", "-"], {
        stdin: database(
          ns,
          "noext",
          "  extensionOptions:\n    - { name: hstore, schema: pg_catalog }\n",
        ),
      });
      assert(r.code !== 0);
      assertMatch(r.stderr, /an extension's schema must be public or one of spec\.schemas/);
    });

    await t.step("an adopted database created otherwise is reported, not changed", async () => {
      // Made by the admin, as an application's database often is: adoption may change its owner.
      const made = await env.pg.psql(
        "CREATE DATABASE c_latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'",
      );
      assertEquals(made.code, 0, made.stderr);
      await env.kube.apply(database(
        ns,
        "latin",
        "  databaseName: c_latin\n  encoding: UTF8\n  locale: C\n",
        '  annotations: { dbtether.io/force-adopt: "true" }\n',
      ));
      await ready("latin");
      const d = await waitFor("the report", async () => {
        const o = await env.getJson<Obj>("database", "latin", ns);
        return conditionOf(o, "OptionsMatch") ? o : undefined;
      }, { timeoutMs: budget("react") });
      const c = conditionOf(d, "OptionsMatch")!;
      assertEquals([c.status, c.reason], ["False", "OptionsDiffer"]);
      assertMatch(c.message, /encoding: spec "UTF8", database "LATIN1"/);
      assert(!/lcCollate/.test(c.message), c.message);
      assertEquals(
        await one(
          env,
          "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'c_latin'",
        ),
        "LATIN1",
      );
      const events = await waitFor("the Warning", async () => {
        const w = await warnings(env, "latin", ns);
        return w.some((l) => l.startsWith("OptionsDiffer:")) ? w : undefined;
      }, { timeoutMs: budget("react") });
      assertMatch(events.join("\n"), /encoding: spec "UTF8"/);
    });
  },
);
