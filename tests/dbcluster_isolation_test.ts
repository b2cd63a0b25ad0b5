/**
 * DBCluster spec.isolation against a real apiserver, a real PostgreSQL (admin not superuser)
 * and the real `dbtether run`: the README's manifests, a role and a database made by hand
 * before the DBCluster, `postgres` owned by a group role the admin is a member of (as
 * cloudsqlsuperuser on Cloud SQL), and a database whose owner the admin cannot act for.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { conditionOf, mergePatch, secretData } from "./helpers/fixtures.ts";
import { resource } from "./helpers/tenant.ts";
import { pointReadmeAtServer, readmeManifests } from "./helpers/seed.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const MUTATING = /statement: (CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|REASSIGN)\b/i;

type Condition = { type: string; status: string; reason: string; message: string };
type IsolationRow = {
  name: string;
  publicConnect: boolean;
  restrictedAt?: string;
  grantedRoles?: number;
  reason?: string;
};
type Cluster = {
  metadata: { generation: number };
  status?: {
    phase?: string;
    lastCheckTime?: string;
    conditions?: Condition[];
    isolation?: { mode?: string; databases?: IsolationRow[] };
  };
};
type Login = { user: string; password: string; database: string };

const row = (c: Cluster | undefined, name: string) =>
  c?.status?.isolation?.databases?.find((d) => d.name === name);

const LEGACY_PASSWORD = "legacy-app-pw-7";

/**
 * What a cloud looks like to its admin: `postgres` owned by a group role the admin is a member
 * of; a login role and a database made by hand before dbtether; `hr`, owned by the superuser.
 */
async function prepareServer(env: TestEnv): Promise<void> {
  const admin = env.pg.admin.user;
  await env.pg.superSql(`
    CREATE ROLE cloud_owner NOLOGIN;
    GRANT cloud_owner TO "${admin}";
    ALTER DATABASE postgres OWNER TO cloud_owner;
    CREATE ROLE legacy_app LOGIN PASSWORD '${LEGACY_PASSWORD}';
    CREATE ROLE legacy_group NOLOGIN;
    CREATE DATABASE legacy OWNER cloud_owner;
    CREATE DATABASE hr;
  `);
}

const legacy = (database: string): Login => ({
  user: "legacy_app",
  password: LEGACY_PASSWORD,
  database,
});

async function login(env: TestEnv, o: Login) {
  return await env.pg.psql("SELECT current_user", o);
}

/** The ACL of a database as the superuser sees it (empty: the default, PUBLIC may connect). */
async function acl(env: TestEnv, database: string): Promise<string> {
  return (await env.pg.superSql(
    `SELECT coalesce(datacl::text, '') FROM pg_database WHERE datname = '${database}'`,
  )).trim();
}

async function mutatingByAdmin(env: TestEnv): Promise<string[]> {
  return (await env.pg.readLog()).split("\n")
    .filter((l) => l.includes(`${env.pg.admin.user}@`) && MUTATING.test(l));
}

async function events(env: TestEnv, name: string): Promise<string> {
  return (await env.kube.kubectl([
    "get",
    "events",
    "-A",
    "--field-selector",
    `involvedObject.name=${name}`,
    "-o",
    "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message",
  ], { check: true })).stdout;
}

/** Waits for a health check that started after now (lastCheckTime has 1 s resolution). */
async function nextChecks(env: TestEnv, name: string, count: number): Promise<Cluster> {
  let seen = (await env.getJson<Cluster>("dbcluster", name))?.status?.lastCheckTime;
  let c: Cluster | undefined;
  for (let i = 0; i < count; i++) {
    c = await waitFor(`health check ${i + 1} of ${name}`, async () => {
      const now = await env.getJson<Cluster>("dbcluster", name);
      const t = now?.status?.lastCheckTime;
      return t !== undefined && t !== seen ? now : undefined;
    }, { timeoutMs: budget("react") });
    seen = c.status?.lastCheckTime;
  }
  return c!;
}

/** Applies the README's manifests verbatim, pointed at the test server as the README says. */
async function applyReadme(env: TestEnv): Promise<void> {
  const blocks = await readmeManifests();
  assertEquals(blocks.length, 4, "Secret, DBCluster, Database, DatabaseUser");
  await env.kube.kubectl(["create", "namespace", "postgres-operator-system"], { check: true });
  for (const b of blocks) await env.kube.apply(b);
  await pointReadmeAtServer(env);
}

/** `kubectl patch --type merge` of a cluster-scoped DBCluster. */
async function patchCluster(env: TestEnv, name: string, spec: Record<string, unknown>) {
  await mergePatch(env, { kind: "dbcluster", name }, { spec });
}

Deno.test({
  name: "isolation Restrict (the default): the README's readonly user cannot reach postgres",
  ...opts,
}, async (t) => {
  await using env = await startEnv({ pg: true });
  await prepareServer(env);
  const hrAcl = await acl(env, "hr");
  const templateAcl = await acl(env, "template1");
  await applyReadme(env);
  await env.startProgram();
  let ro: Login;

  await t.step("the README's resources become Ready; Isolated reports what it did", async () => {
    await env.waitPhase("dbcluster", "my-aurora-cluster", "Connected");
    await env.waitPhase("database", "my-app-db", "Ready", { namespace: "default" });
    await env.waitPhase("databaseuser", "my-app-readonly", "Ready", { namespace: "default" });
    const d =
      (await secretData(env, { namespace: "default", name: "my-app-readonly-credentials" })) ?? {};
    ro = { user: d.username!, password: d.password!, database: d.database! };
    const c = await waitFor("the Isolated condition", async () => {
      const c = await env.getJson<Cluster>("dbcluster", "my-aurora-cluster");
      return row(c, "postgres")?.publicConnect === false && row(c, "legacy") ? c : undefined;
    });
    assertEquals(conditionOf(c, "Ready")?.status, "True", "isolation never fails Ready");
    assertEquals(c.status?.phase, "Connected");
    const iso = conditionOf(c, "Isolated")!;
    assertEquals([iso.status, iso.reason], ["False", "OwnerNotActable"]);
    assert(/database "hr": its owner "postgres"/.test(iso.message), iso.message);
    assert(/spec\.isolation to Keep/.test(iso.message), iso.message);
    assertEquals(c.status?.isolation?.mode, "Restrict");
    const names = c.status?.isolation?.databases?.map((x) => x.name);
    assertEquals(names, ["hr", "legacy", "postgres"], "no template, no managed database");
    for (const name of ["postgres", "legacy"]) {
      const r = row(c, name)!;
      assertEquals(r.publicConnect, false);
      assert(r.restrictedAt, `${name}: restrictedAt`);
      assert((r.grantedRoles ?? 0) >= 2, `${name}: admin and legacy_app got CONNECT`);
    }
    assertEquals(row(c, "hr"), { name: "hr", publicConnect: true, reason: "OwnerNotActable" });
    const ev = await events(env, "my-aurora-cluster");
    assert(/Normal\s+Restricted\s+.*database "postgres".*"legacy_app"/.test(ev), ev);
    assert(/Normal\s+Restricted\s+.*database "legacy"/.test(ev), ev);
    assert(/Warning\s+OwnerNotActable\s+.*"hr"/.test(ev), ev);
  });

  await t.step("the readonly user reaches its own database only", async () => {
    const own = await login(env, ro);
    assertEquals(own.code, 0, own.stderr);
    for (const db of ["postgres", "legacy"]) {
      const r = await login(env, { ...ro, database: db });
      assert(r.code !== 0, `${db}: ${r.stdout}`);
      assert(new RegExp(`permission denied for database "${db}"`).test(r.stderr), r.stderr);
    }
    // Reported, not restricted: the admin cannot act for hr's owner.
    assertEquals((await login(env, { ...ro, database: "hr" })).code, 0);
  });

  await t.step("the role made before the DBCluster keeps its access, and gains none", async () => {
    for (const db of ["postgres", "legacy", "hr"]) {
      const r = await login(env, legacy(db));
      assertEquals(r.code, 0, `${db}: ${r.stderr}`);
    }
    const mine = await login(env, legacy("my_app"));
    assert(/permission denied for database "my_app"/.test(mine.stderr), mine.stderr);
    assertEquals((await env.pg.psql("SELECT 1")).code, 0, "the admin still reaches postgres");
  });

  await t.step("nothing else changed: hr, templates, the NOLOGIN role", async () => {
    assertEquals(await acl(env, "hr"), hrAcl);
    assertEquals(await acl(env, "template1"), templateAcl);
    const pg = await acl(env, "postgres");
    assert(!/[{,]=[A-Za-z*]*c/.test(pg), `PUBLIC lost CONNECT on postgres: ${pg}`);
    assert(pg.includes("legacy_app=c/cloud_owner"), pg);
    assert(!pg.includes("legacy_group"), `NOLOGIN roles get nothing: ${pg}`);
    assert(!pg.includes("my-app-readonly"), pg);
  });

  await t.step("a converged server gets no mutating statement from the checks", async () => {
    await patchCluster(env, "my-aurora-cluster", { healthCheckInterval: "2s" });
    await nextChecks(env, "my-aurora-cluster", 1);
    const before = await mutatingByAdmin(env);
    await nextChecks(env, "my-aurora-cluster", 2);
    const after = await mutatingByAdmin(env);
    assertEquals(after.slice(before.length), []);
  });

  await t.step("a database made by hand later is restricted at the next check", async () => {
    await env.pg.superSql("CREATE DATABASE later OWNER cloud_owner");
    const c = await waitFor("later restricted", async () => {
      const c = await env.getJson<Cluster>("dbcluster", "my-aurora-cluster");
      return row(c, "later")?.publicConnect === false ? c : undefined;
    });
    assert(row(c, "later")?.restrictedAt);
    assertEquals((await login(env, legacy("later"))).code, 0);
    const r = await login(env, { ...ro, database: "later" });
    assert(/permission denied for database "later"/.test(r.stderr), r.stderr);
  });

  await t.step("a rotated password is verified in the user's own database", async () => {
    await env.kube.kubectl([
      "annotate",
      "databaseuser",
      "my-app-readonly",
      "-n",
      "default",
      "dbtether.io/rotate=after-isolation",
    ], { check: true });
    const now = await waitFor("the rotated password", async () => {
      const d =
        (await secretData(env, { namespace: "default", name: "my-app-readonly-credentials" })) ??
          {};
      return d.password && d.password !== ro.password ? d : undefined;
    }, { timeoutMs: budget("ready") });
    const fresh = { ...ro, password: now.password! };
    assertEquals((await login(env, fresh)).code, 0);
    await env.waitPhase("databaseuser", "my-app-readonly", "Ready", { namespace: "default" });
  });
});

Deno.test({
  name: "isolation Keep leaves other databases alone and says so; Restrict applies on switch",
  ...opts,
}, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await prepareServer(env);
  const ns = await env.namespace("keep");
  await env.kube.apply(env.clusterManifest("main", {
    extraSpec: "  isolation: Keep\n  healthCheckInterval: 2s\n",
  }));
  await env.kube.apply(resource("Database", {
    name: "shop",
    ns,
    spec: "clusterRef: { name: main }\ndeletionPolicy: Delete\n",
  }));
  await env.kube.apply(resource("DatabaseUser", {
    name: "shop-ro",
    ns,
    spec: "databaseRef: { name: shop }\nprivileges: readonly\n",
  }));
  await env.waitPhase("databaseuser", "shop-ro", "Ready", { namespace: ns });
  const d = (await secretData(env, { namespace: ns, name: "shop-ro-credentials" })) ?? {};
  const ro = { user: d.username!, password: d.password!, database: "shop" };

  await t.step(
    "Isolated=False, IsolationKept; no ACL touched; the user reaches postgres",
    async () => {
      const c = await waitFor("IsolationKept", async () => {
        const c = await env.getJson<Cluster>("dbcluster", "main");
        return conditionOf(c, "Isolated")?.reason === "IsolationKept" ? c : undefined;
      });
      assertEquals(conditionOf(c, "Ready")?.status, "True");
      assertEquals(conditionOf(c, "Isolated")?.status, "False");
      assert(/spec\.isolation is Keep/.test(conditionOf(c, "Isolated")!.message));
      assertEquals(c.status?.isolation?.mode, "Keep");
      assertEquals(c.status?.isolation?.databases, [
        { name: "hr", publicConnect: true, reason: "IsolationKept" },
        { name: "legacy", publicConnect: true, reason: "IsolationKept" },
        { name: "postgres", publicConnect: true, reason: "IsolationKept" },
      ]);
      for (const db of ["postgres", "legacy", "hr"]) assertEquals(await acl(env, db), "");
      assertEquals((await login(env, { ...ro, database: "postgres" })).code, 0);
      assert(/Normal\s+IsolationKept/.test(await events(env, "main")));
    },
  );

  await t.step("switched to Restrict, the same server is restricted", async () => {
    await patchCluster(env, "main", { isolation: "Restrict" });
    await waitFor("postgres restricted", async () => {
      const c = await env.getJson<Cluster>("dbcluster", "main");
      return row(c, "postgres")?.publicConnect === false;
    });
    const r = await login(env, { ...ro, database: "postgres" });
    assert(/permission denied for database "postgres"/.test(r.stderr), r.stderr);
    assertEquals((await login(env, legacy("postgres"))).code, 0);
    assertEquals((await login(env, ro)).code, 0);
  });
});
