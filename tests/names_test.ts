/**
 * Hostile names through the CRDs, against the real apiserver and PostgreSQL: each DatabaseUser
 * `username` and Database `databaseName` either ends up as exactly that name in pg_roles /
 * pg_database (and the user logs in with it), or is rejected at admission with a message that
 * says why. Nothing else in the server changes.
 */
import { budget } from "./helpers/timeouts.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { databaseRoles } from "../controllers/postgres/names.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { secretData } from "./helpers/fixtures.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const bytes = (s: string) => new TextEncoder().encode(s).length;

/** Names that must survive quoting exactly; every one is at most 63 bytes. */
const HOSTILE = [
  "my-App",
  "O'Brien",
  'dq"name',
  "with space",
  "x; DROP ROLE dbtether_admin",
  "back\\slash",
  "ü".repeat(31) + "x",
  "日本語".repeat(7),
  "🐘".repeat(15) + "abc",
];

type Obj = {
  status?: {
    phase?: string;
    conditions?: { type: string; reason: string; message: string }[];
  };
  data?: Record<string, string>;
};

/** Role names with their attributes, and database names: what "the server" is here. */
async function snapshot(env: TestEnv): Promise<{ roles: Set<string>; dbs: Set<string> }> {
  // JSON keeps names with spaces, quotes and multibyte characters intact.
  const roles = JSON.parse(
    await env.pg.superSql(
      `SELECT coalesce(json_agg(json_build_array(rolname, rolsuper, rolcreaterole, rolcreatedb,
         rolcanlogin, rolconnlimit) ORDER BY rolname), '[]') FROM pg_roles`,
    ),
  ) as unknown[][];
  const dbs = JSON.parse(
    await env.pg.superSql(
      `SELECT coalesce(json_agg(datname ORDER BY datname), '[]') FROM pg_database`,
    ),
  ) as string[];
  return { roles: new Set(roles.map((r) => JSON.stringify(r))), dbs: new Set(dbs) };
}

const roleName = (row: string) => (JSON.parse(row) as string[])[0]!;

function user(name: string, ns: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "dbtether.io/v1alpha1",
    kind: "DatabaseUser",
    metadata: { name, namespace: ns },
    spec,
  });
}

function database(name: string, ns: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Database",
    metadata: { name, namespace: ns },
    spec: { clusterRef: { name: "main" }, deletionPolicy: "Delete", ...spec },
  });
}

Deno.test({ name: "hostile role and database names", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await env.kube.apply(env.clusterManifest("main"));
  await env.waitPhase("dbcluster", "main", "Connected");
  const ns = await env.namespace("names");
  const before = await snapshot(env);
  for (const n of HOSTILE) assert(bytes(n) <= 63, `${n} is ${bytes(n)} bytes`);

  await t.step("each name is created exactly as written, and logs in", async () => {
    for (const [i, n] of HOSTILE.entries()) {
      await env.kube.apply(database(`db${i}`, ns, { databaseName: n }));
      await env.kube.apply(user(`u${i}`, ns, { databaseRef: { name: `db${i}` }, username: n }));
    }
    for (const [i, n] of HOSTILE.entries()) {
      await env.waitPhase("databaseuser", `u${i}`, "Ready", {
        namespace: ns,
        timeoutMs: budget("bulk"),
      });
      const d = (await secretData(env, { namespace: ns, name: `u${i}-credentials` }))!;
      assertEquals([d.username, d.database], [n, n]);
      const r = await env.pg.psql("SELECT current_user, current_database()", {
        user: n,
        password: d.password!,
        database: n,
      });
      assertEquals(r.code, 0, `${n}: ${r.stderr}`);
      assertEquals(r.stdout.trim(), `${n}|${n}`);
      const uri = new URL(d.uri!);
      assertEquals(decodeURIComponent(uri.username), n);
      assertEquals(decodeURIComponent(uri.pathname.slice(1)), n);
    }
  });

  await t.step("names that are too long or reserved are rejected at admission", async () => {
    const cases: [string, string, RegExp][] = [
      [
        "long-user",
        user("long-user", ns, { databaseRef: { name: "db0" }, username: "é".repeat(32) }),
        /at most 63 bytes/,
      ],
      [
        "reserved-user",
        user("reserved-user", ns, { databaseRef: { name: "db0" }, username: "postgres" }),
        /reserved name/,
      ],
      [
        "public-user",
        user("public-user", ns, { databaseRef: { name: "db0" }, username: "Public" }),
        /reserved name/,
      ],
      [
        "pg-user",
        user("pg-user", ns, { databaseRef: { name: "db0" }, username: "pg_monitor2" }),
        /must not start with pg_ or rds_/,
      ],
      [
        "rds-user",
        user("rds-user", ns, { databaseRef: { name: "db0" }, username: "rds_superuser" }),
        /must not start with pg_ or rds_/,
      ],
      [
        "long-db",
        database("long-db", ns, { databaseName: "日本語".repeat(7) + "x" }),
        /at most 63 bytes/,
      ],
      ["template-db", database("template-db", ns, { databaseName: "template1" }), /reserved name/],
      [
        "pg-db",
        database("pg-db", ns, { databaseName: "pg_catalog2" }),
        /must not start with pg_ or rds_/,
      ],
    ];
    for (const [name, manifest, message] of cases) {
      const r = await env.kube.kubectl(["apply", "-f", "-"], { stdin: manifest });
      assert(r.code !== 0, `${name} was admitted`);
      assert(message.test(r.stderr), `${name}: ${r.stderr}`);
    }
  });

  await t.step("the admin role itself is refused by the controller", async () => {
    await env.kube.apply(
      user("as-admin", ns, { databaseRef: { name: "db0" }, username: env.pg.admin.user }),
    );
    const u = await waitFor("as-admin refused", async () => {
      const o = await env.getJson<Obj>("databaseuser", "as-admin", ns);
      const c = o?.status?.conditions?.find((x) => x.type === "Ready");
      return c && c.reason !== "Ready" && o?.status?.phase === "Failed" ? c : undefined;
    }, { timeoutMs: budget("ready") });
    assert(/admin role/.test(u.message), u.message);
    assertEquals(await secretData(env, { namespace: ns, name: "as-admin-credentials" }), undefined);
    const r = await env.pg.psql("SELECT 1");
    assertEquals(r.code, 0, "the admin still logs in");
  });

  await t.step("nothing else in the server changed", async () => {
    const after = await snapshot(env);
    const expectedRoles = new Set(
      HOSTILE.flatMap((n) => [n, ...Object.values(databaseRoles(n))]),
    );
    // Every role that existed before is still there with the same attributes.
    assertEquals([...before.roles].filter((r) => !after.roles.has(r)), []);
    const added = [...after.roles].filter((r) => !before.roles.has(r)).map(roleName).sort();
    assertEquals(added, [...expectedRoles].sort());
    assertEquals([...before.dbs].filter((d) => !after.dbs.has(d)), []);
    const addedDbs = [...after.dbs].filter((d) => !before.dbs.has(d)).sort();
    assertEquals(addedDbs, [...HOSTILE].sort());
  });
});
