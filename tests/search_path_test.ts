/**
 * A tenant cannot make the operator's admin sessions run the tenant's functions. An admin-level
 * DatabaseUser acts as the database's owner role, which may `ALTER DATABASE ... SET search_path`
 * to a schema it controls and put functions there that match the catalog functions dbtether's
 * queries call by their bare names (has_schema_privilege, ...) better than pg_catalog's. Without
 * a pinned search_path the admin would call them with its CREATEROLE privileges. Real program,
 * real apiserver, real PostgreSQL with a non-superuser admin.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { secretData } from "./helpers/fixtures.ts";
import { resource } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "a database's search_path cannot make the admin run a tenant's functions",
  ...opts,
}, async () => {
  await using env = await startEnv({ pg: true, program: true });
  const ns = await env.namespace("sp");
  await env.kube.apply(env.clusterManifest("main"));
  await env.kube.apply(resource("Database", {
    name: "shop",
    ns,
    spec: "clusterRef: { name: main }\nextensions: [pg_trgm]\n",
  }));
  await env.kube.apply(resource("DatabaseUser", {
    name: "mallory",
    ns,
    spec: "databaseRef: { name: shop }\nprivileges: admin\n",
  }));
  await env.waitPhase("databaseuser", "mallory", "Ready", { namespace: ns });
  const password = (await secretData(env, { namespace: ns, name: "mallory-credentials" }))!
    .password!;
  // As the tenant: a trap schema first in the database's search_path, with functions of the
  // names and text arguments the operator's catalog queries call, logging who called them.
  const trap = await env.pg.psql(
    `
    CREATE SCHEMA trap;
    CREATE TABLE trap.calls (who text);
    GRANT INSERT ON trap.calls TO PUBLIC;
    CREATE FUNCTION trap.has_schema_privilege(text, oid, text) RETURNS boolean
      LANGUAGE sql AS $$ INSERT INTO trap.calls SELECT current_user; SELECT true $$;
    CREATE FUNCTION trap.has_table_privilege(text, oid, text) RETURNS boolean
      LANGUAGE sql AS $$ INSERT INTO trap.calls SELECT current_user; SELECT true $$;
    CREATE FUNCTION trap.has_sequence_privilege(text, oid, text) RETURNS boolean
      LANGUAGE sql AS $$ INSERT INTO trap.calls SELECT current_user; SELECT true $$;
    ALTER DATABASE shop SET search_path = trap, public;
    CREATE TABLE public.orders (id int);
  `,
    { user: "mallory", password, database: "shop" },
  );
  assertEquals(trap.code, 0, trap.stderr);
  // The trap works: a session that takes the database's search_path calls the tenant's function.
  const probe = await env.pg.psql(
    "SELECT has_schema_privilege('mallory'::text, 'public'::regnamespace::oid, 'USAGE'); " +
      "SELECT count(*) FROM trap.calls",
    { database: "shop" },
  );
  assertEquals(probe.code, 0, probe.stderr);
  assertEquals(probe.stdout.trim().split("\n").at(-1), "1", "the trap did not catch a session");
  await env.pg.superSql("DELETE FROM trap.calls", { database: "shop" });

  // Make the operator reconcile the database again (a spec change) and wait for it.
  await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: shop, namespace: ${ns} }
spec:
  clusterRef: { name: main }
  extensions: [pg_trgm, uuid-ossp]
`);
  await waitFor("the Database to reconcile the new spec", async () => {
    const db = await env.getJson<
      { metadata: { generation: number }; status?: { observedGeneration?: number; phase?: string } }
    >("database", "shop", ns);
    return db?.status?.observedGeneration === db?.metadata.generation &&
      db?.status?.phase === "Ready";
  }, { timeoutMs: budget("ready") });
  // The readonly group got its grant on the tenant's new table: the queries did run.
  const grants = await env.pg.superSql(
    "SELECT pg_catalog.has_table_privilege('shop_readonly', 'public.orders', 'SELECT')",
    { database: "shop" },
  );
  assertEquals(grants.trim(), "t");
  const calls = await env.pg.superSql("SELECT string_agg(who, ',') FROM trap.calls", {
    database: "shop",
  });
  assertEquals(calls.trim(), "", `the admin ran the tenant's functions: ${calls.trim()}`);
  const ext = await env.pg.superSql(
    "SELECT extname || ':' || extnamespace::regnamespace FROM pg_extension ORDER BY 1",
    { database: "shop" },
  );
  assert(ext.includes("uuid-ossp:public"), `extensions still go to public: ${ext}`);
});
