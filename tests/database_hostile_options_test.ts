/**
 * A hostile tenant's Database.spec.tablespace and spec.extensionOptions, against the real
 * apiserver and PostgreSQL (admin not superuser): quotes, semicolons, comment markers, NUL,
 * 64-byte names, a tablespace the DBCluster does not list, an extension schema another tenant owns,
 * another tenant's database. Each is refused at admission or with a clear reason; a name that is
 * allowed stays one literal identifier; the admin sends no statement about a refused database, and
 * nothing outside the tenant's namespace changes (roles, memberships, the other tenant's database,
 * its Kubernetes objects).
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { createTablespace, readyOf, waitReason } from "./helpers/fixtures.ts";
import { logMark, mutatingSince, resource, rolesSnapshot } from "./helpers/tenant.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A Database of the hostile tenant; every value goes through JSON, which YAML reads as is. */
function database(ns: string, name: string, spec: Record<string, unknown>): string {
  const lines = Object.entries({ clusterRef: { name: "main" }, deletionPolicy: "Delete", ...spec })
    .map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`).join("");
  return resource("Database", { name, ns, spec: lines });
}

/** What another tenant has on the server and in Kubernetes, as lines. */
async function outside(env: TestEnv, victimNs: string): Promise<string[]> {
  // Roles of the hostile tenant's databases (all named c_h*) are expected to appear.
  const roles = (await rolesSnapshot(env.pg)).filter((l) => !l.includes("c_h"));
  const victim = await env.pg.superSql(
    "SELECT 'ext ' || e.extname || ' ' || n.nspname FROM pg_extension e " +
      "JOIN pg_namespace n ON n.oid = e.extnamespace UNION ALL " +
      "SELECT 'schema ' || nspname || ' ' || pg_get_userbyid(nspowner) || ' ' || " +
      "coalesce(obj_description(oid, 'pg_namespace'), '-') FROM pg_namespace ORDER BY 1",
    { database: "c_victim" },
  );
  const dbs = await env.pg.superSql(
    "SELECT 'db ' || d.datname || ' ' || pg_get_userbyid(d.datdba) || ' ' || t.spcname " +
      "FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace " +
      "WHERE d.datname NOT LIKE 'c\\_h%' ORDER BY 1",
  );
  const kube = await env.kube.kubectl([
    "get",
    "databases,secrets",
    "-n",
    victimNs,
    "-o",
    "jsonpath={range .items[*]}{.kind} {.metadata.name} {.metadata.resourceVersion}{'\\n'}{end}",
  ], { check: true });
  return [...roles, ...victim.split("\n"), ...dbs.split("\n"), ...kube.stdout.split("\n")]
    .filter((l) => l !== "");
}

/** Refused at admission: kubectl fails with a message naming the field, and nothing is stored. */
type Admission = { name: string; spec: Record<string, unknown>; message: RegExp };
/** Accepted by the apiserver, refused by the controller with this reason and message. */
type Refusal = { name: string; spec: Record<string, unknown>; reason: string; message: RegExp };

const BAD_NAMES = [
  'ts_ok"; DROP DATABASE c_victim; --',
  "ts_ok' OR '1'='1",
  "ts_ok /* */",
  "ts_ok -- x",
  '"ts_ok"',
  "TS_OK",
  "ts_ok;",
];

Deno.test({ name: "hostile tablespace and extension options", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  const ns = await env.namespace("hostile");
  const victimNs = await env.namespace("victim");
  await env.kube.apply(env.clusterManifest("main", {
    extraSpec: "  allowedTablespaces: [ts_ok]\n",
  }));
  await createTablespace(env.pg, "ts_ok");
  await createTablespace(env.pg, "ts_other");
  await env.kube.apply(
    database(victimNs, "vict", { databaseName: "c_victim", schemas: [{ name: "vs" }] }),
  );
  await env.waitPhase("database", "vict", "Ready", { namespace: victimNs });
  // A schema in the tenant's own database that another tenant's role owns (as a user of another
  // namespace, let in through allowedUserNamespaces, would have made it).
  await env.kube.apply(database(ns, "own", { databaseName: "c_h_own" }));
  await env.waitPhase("database", "own", "Ready", { namespace: ns });
  await env.pg.superSql(
    "CREATE ROLE tenant2 NOLOGIN; " +
      "COMMENT ON ROLE tenant2 IS 'dbtether:DatabaseUser/other-ns/tenant2'; " +
      "CREATE SCHEMA theirs AUTHORIZATION tenant2",
    { database: "c_h_own" },
  );
  const before = await outside(env, victimNs);
  const mark = await logMark(env.pg);

  const long = "t".repeat(64);
  const wide = "ü".repeat(32);
  const admissions: Admission[] = [
    { name: "ts-nul", spec: { tablespace: "ts\0ok" }, message: /spec\.tablespace/ },
    { name: "ts-long", spec: { tablespace: long }, message: /spec\.tablespace/ },
    { name: "ts-wide", spec: { tablespace: wide }, message: /at most 63 bytes in UTF-8/ },
    { name: "ext-nul", spec: { extensionOptions: [{ name: "hst\0re" }] }, message: /name/ },
    { name: "ext-long", spec: { extensionOptions: [{ name: long }] }, message: /name/ },
    { name: "ext-wide", spec: { extensionOptions: [{ name: wide }] }, message: /63 bytes/ },
    ...["1.4; DROP DATABASE c_victim", "1.4'--", "1.4 /*", '1.4"', ""].map((version, i) => ({
      name: `ext-version-${i}`,
      spec: { extensionOptions: [{ name: "hstore", version }] },
      message: /version/,
    })),
    ...["vs", 'app"; --', "pg_catalog", "theirs\0"].map((schema, i) => ({
      name: `ext-schema-${i}`,
      spec: { schemas: [{ name: "app" }], extensionOptions: [{ name: "hstore", schema }] },
      message: /schema/,
    })),
  ];
  const refusals: Refusal[] = [
    ...[...BAD_NAMES, "ts_other"].map((tablespace, i) => ({
      name: `ts-${i}`,
      spec: { databaseName: `c_h_ts${i}`, tablespace },
      reason: "TablespaceNotAllowed",
      message: /does not list it in spec\.allowedTablespaces/,
    })),
    ...BAD_NAMES.map((name, i) => ({
      name: `ext-${i}`,
      spec: { databaseName: `c_h_ext${i}`, extensionOptions: [{ name }] },
      reason: "ExtensionFailed",
      message: /it is not available on the server/,
    })),
    {
      name: "ext-theirs",
      spec: {
        databaseName: "c_h_own",
        schemas: [{ name: "theirs" }],
        extensionOptions: [{ name: "hstore", schema: "theirs" }],
      },
      reason: "SchemaClaimedByOther",
      message: /"theirs"/,
    },
    {
      name: "ext-victim",
      spec: {
        databaseName: "c_victim",
        schemas: [{ name: "vs" }],
        extensionOptions: [{ name: "hstore", schema: "vs" }],
      },
      reason: "DatabaseClaimedByOther",
      message: /c_victim/,
    },
  ];

  await t.step("refused at admission, with the field in the message", async () => {
    for (const a of admissions) {
      const r = await env.kube.kubectl(["apply", "-f", "-"], {
        stdin: database(ns, a.name, a.spec),
      });
      assert(r.code !== 0, `${a.name} was admitted: ${JSON.stringify(a.spec)}`);
      assertMatch(r.stderr, a.message, a.name);
      const got = await env.kube.kubectl(["get", "database", a.name, "-n", ns]);
      assert(got.code !== 0, `${a.name} is stored`);
    }
  });

  await t.step("refused by the controller with a clear reason", async () => {
    // ext-theirs replaces "own" (same database) so that the claim on theirs is what is refused.
    for (const r of refusals) {
      const name = r.name === "ext-theirs" ? "own" : r.name;
      await env.kube.apply(database(ns, name, r.spec));
    }
    for (const r of refusals) {
      const name = r.name === "ext-theirs" ? "own" : r.name;
      const x = await waitReason(env, { kind: "database", namespace: ns, name, reason: r.reason });
      assertMatch(readyOf(x)!.message, r.message, r.name);
    }
  });

  await t.step("the admin sent no statement with a refused value", async () => {
    // A missing extension refuses the extension, not the database: those databases exist.
    const made = await env.pg.superSql(
      "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database " +
        "WHERE datname LIKE 'c\\_h\\_%'",
    );
    const exts = BAD_NAMES.map((_, i) => `c_h_ext${i}`);
    assertEquals(made.trim(), [...exts, "c_h_own"].join(","));
    for (const db of [...exts, "c_h_own"]) {
      const sql = "SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql'";
      const n = await env.pg.superSql(sql, { database: db });
      assertEquals(n.trim(), "0", db);
    }
    const sent = await mutatingSince(env, mark);
    const about = sent.filter((l) =>
      /c_h_ts|EXTENSION|DROP|tenant2|"theirs"|ts_other|TS_OK|c_victim/.test(l)
    );
    assertEquals(about, []);
  });

  await t.step("nothing outside the namespace changed", async () => {
    assertEquals(await outside(env, victimNs), before);
  });

  await t.step("an allowed hostile schema name stays one literal identifier", async () => {
    const schema = 'a"; DROP SCHEMA public; --';
    await env.kube.apply(database(ns, "weird", {
      databaseName: "c_h_weird",
      schemas: [{ name: schema }],
      extensionOptions: [{ name: "hstore", schema }],
    }));
    await env.waitPhase("database", "weird", "Ready", { namespace: ns });
    const where = await env.pg.superSql(
      "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace " +
        "WHERE e.extname = 'hstore'",
      { database: "c_h_weird" },
    );
    assertEquals(where.trim(), schema);
    const publicLeft = await env.pg.superSql(
      "SELECT count(*) FROM pg_namespace WHERE nspname = 'public'",
      { database: "c_h_weird" },
    );
    assertEquals(publicLeft.trim(), "1");
    assertEquals(await outside(env, victimNs), before);
  });
});
