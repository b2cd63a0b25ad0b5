/**
 * A DatabaseUser's search_path follows its schemas (databases[].schemas[]), checked as the user:
 * log in with the Secret's password, `SHOW search_path`, and see an unqualified name resolve in
 * the first schema listed. Hostile schema names (quotes, a comma, `$user`) stay literal
 * identifiers; a value changed by hand is put back with a DriftCorrected Event; removing the
 * schemas resets it; a value set by hand on a user without schemas is left alone. Real program,
 * real apiserver, real PostgreSQL with a non-superuser admin.
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { secretData } from "./helpers/fixtures.ts";
import { resource, warnings } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const COMMA = "x, y";
const QUOTE = 'q"z';

/** A user of `shop`; `entry` is YAML inside its one databases[] item. */
function user(ns: string, name: string, entry: string): string {
  return resource("DatabaseUser", { name, ns, spec: `databases:\n  - name: shop\n${entry}` });
}

const adminOf = (names: readonly string[]) =>
  "    schemas:\n" +
  names.map((n) => `      - { name: ${JSON.stringify(n)}, privileges: admin }\n`).join("");

/** Runs SQL as the user with its Secret's credentials; returns stdout, failing on an error. */
async function as(env: TestEnv, ns: string, name: string, sql: string): Promise<string> {
  await env.waitPhase("databaseuser", name, "Ready", { namespace: ns });
  const d = (await secretData(env, { namespace: ns, name: `${name}-credentials` }))!;
  const r = await env.pg.psql(sql, { user: d.username!, password: d.password!, database: "shop" });
  assertEquals(r.code, 0, `${name}: ${sql}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The stored search_path of role `role` (a plain name) in shop ("" for none). */
async function stored(env: TestEnv, role: "rep" | "plain"): Promise<string> {
  return (await env.pg.superSql(
    "SELECT coalesce((SELECT c FROM pg_db_role_setting s, unnest(s.setconfig) c " +
      `WHERE s.setrole = '${role}'::regrole ` +
      "AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = 'shop') " +
      "AND c LIKE 'search\\_path=%'), '')",
  )).trim();
}

Deno.test({ name: "a user's search_path follows its schemas", ...opts }, async (t) => {
  await using env = await startEnv({
    pg: true,
    program: true,
    programArgs: ["--resync-period", "3s"],
  });
  const ns = await env.namespace("upath");
  await env.kube.apply(env.clusterManifest("main"));
  const schemas = ["app", "reporting", "$user", COMMA, QUOTE];
  await env.kube.apply(resource("Database", {
    name: "shop",
    ns,
    spec: "clusterRef: { name: main }\ndeletionPolicy: Delete\nschemas:\n" +
      schemas.map((s) => `  - name: ${JSON.stringify(s)}\n`).join(""),
  }));
  await env.waitPhase("database", "shop", "Ready", { namespace: ns });
  await env.kube.apply(user(ns, "rep", adminOf(["reporting", "app"])));
  await env.kube.apply(user(ns, "odd", adminOf(["$user", COMMA, QUOTE])));
  await env.kube.apply(user(ns, "plain", "    privileges: readonly\n"));
  await as(env, ns, "plain", "SELECT 1");
  // As the platform team, by hand, on a user without schemas: not dbtether's to change.
  await env.pg.superSql(`ALTER ROLE plain IN DATABASE shop SET search_path = public`);

  await t.step("in the order listed: an unqualified name resolves in the first", async () => {
    assertEquals(await as(env, ns, "rep", "SHOW search_path"), "reporting, app");
    await as(
      env,
      ns,
      "rep",
      "CREATE TABLE app.t (v text); INSERT INTO app.t VALUES ('app'); " +
        "CREATE TABLE reporting.t (v text); INSERT INTO reporting.t VALUES ('reporting'); " +
        "CREATE TABLE made (v text)",
    );
    assertEquals(await as(env, ns, "rep", "SELECT v FROM t"), "reporting");
    assertEquals(await as(env, ns, "rep", "SELECT to_regclass('reporting.made') IS NOT NULL"), "t");
  });

  await t.step("hostile schema names stay literal identifiers; $user is left out", async () => {
    // PostgreSQL reads a search_path entry "$user" as the role's name, quoted or not.
    assertEquals(await as(env, ns, "odd", "SHOW search_path"), `"x, y", "q""z"`);
    await as(
      env,
      ns,
      "odd",
      `CREATE TABLE "$user".t (v text); INSERT INTO "$user".t VALUES ('dollar'); ` +
        `CREATE TABLE "q""z".t (v text); INSERT INTO "q""z".t VALUES ('quote'); ` +
        `CREATE TABLE "x, y".t (v text); INSERT INTO "x, y".t VALUES ('comma')`,
    );
    assertEquals(await as(env, ns, "odd", "SELECT v FROM t"), "comma");
    assertEquals(
      await as(env, ns, "odd", "SELECT count(*) FROM pg_namespace WHERE nspname = 'x'"),
      "0",
    );
  });

  await t.step("a value changed by hand is put back, named in a DriftCorrected Event", async () => {
    await env.pg.superSql(`ALTER ROLE rep IN DATABASE shop SET search_path = public`);
    await waitFor(
      "put back",
      async () => (await stored(env, "rep")) === "search_path=reporting, app",
      { timeoutMs: budget("react") },
    );
    const ev = await waitFor("the Event", async () => {
      const w = await warnings(env, "rep", ns);
      return w.find((l) => l.startsWith("DriftCorrected") && l.includes("search_path"));
    }, { timeoutMs: budget("react") });
    assertMatch(ev, /SET search_path = "reporting", "app"/);
    assertEquals(await as(env, ns, "rep", "SELECT v FROM t"), "reporting");
  });

  await t.step("the schemas removed: reset, and the default applies again", async () => {
    await env.kube.apply(user(ns, "rep", "    privileges: readonly\n"));
    await waitFor("reset", async () => (await stored(env, "rep")) === "", {
      timeoutMs: budget("react"),
    });
    assertEquals(await as(env, ns, "rep", "SHOW search_path"), `"$user", public`);
  });

  await t.step("a value set by hand on a user without schemas is left alone", async () => {
    // Resyncs ran meanwhile (the drift above was found by one): plain was reconciled again.
    assertEquals(await stored(env, "plain"), "search_path=public");
    assertEquals(await as(env, ns, "plain", "SHOW search_path"), "public");
    const w = await warnings(env, "plain", ns);
    assert(!w.some((l) => l.includes("search_path")), w.join("\n"));
  });
});
