/**
 * Issue 7 item 10: `spec.secret.name` (with onConflict Adopt or Merge) and a PostgresDatabase's
 * adopt annotation never take over a Secret that belongs to another dbtether resource (its
 * application Secret or its credentials record), nor one a DBCluster reads its admin credentials
 * from. The hostile DatabaseUsers live in the victim's namespace (Secrets are namespaced); the
 * victim's Secrets keep every byte, its password still logs in, and each attacker's status says
 * why.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { type Obj, readyOf, runsAs, secretData, waitReason } from "./helpers/fixtures.ts";
import { resource } from "./helpers/tenant.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Everything of a Secret an overwrite would change. */
async function secretState(env: TestEnv, name: string, ns: string) {
  const s = await env.getJson<Obj>("secret", name, ns);
  assert(s, `Secret ${name} exists`);
  const { resourceVersion, labels, annotations, ownerReferences } = s.metadata;
  return { resourceVersion, labels, annotations, ownerReferences, data: s.data };
}

Deno.test({
  name: "Secrets of other resources are never adopted or merged, whatever onConflict says",
  ...opts,
}, async (t) => {
  await using env = await startEnv({
    pg: true,
    programArgs: ["--postgresdatabase-cluster", "main"],
  });
  const ns = await env.namespace("team");
  await env.kube.apply(env.clusterManifest("main"));
  // A second DBCluster whose admin credentials Secret was put into the tenant's namespace.
  await env.kube.apply(env.clusterManifest("shared", { secretNamespace: ns }));
  await env.startProgram();
  await env.waitPhase("dbcluster", "shared", "Connected");
  await env.kube.apply(resource("Database", {
    name: "app",
    ns,
    spec: "clusterRef: { name: main }\ndeletionPolicy: Delete\n",
  }));
  await env.kube.apply(resource("DatabaseUser", {
    name: "victim",
    ns,
    spec: "databaseRef: { name: app }\n",
  }));
  await env.waitPhase("databaseuser", "victim", "Ready", { namespace: ns });
  const creds = (await secretData(env, { namespace: ns, name: "victim-credentials" }))!;
  const before = {
    state: await secretState(env, "dbtether-victim-state", ns),
    app: await secretState(env, "victim-credentials", ns),
    admin: await secretState(env, "shared-admin", ns),
  };

  const attacker = (name: string, secret: string) =>
    resource("DatabaseUser", { name, ns, spec: `databaseRef: { name: app }\nsecret:\n${secret}` });
  // [name, spec.secret, expected reason]
  const cases: [string, string, string][] = [
    [
      "evil-state-adopt",
      "  name: dbtether-victim-state\n  onConflict: Adopt\n",
      "SecretNameReserved",
    ],
    [
      "evil-state-merge",
      "  name: dbtether-victim-state\n  onConflict: Merge\n",
      "SecretNameReserved",
    ],
    [
      "evil-own-state",
      "  name: dbtether-evil-own-state-state\n  onConflict: Adopt\n",
      "SecretNameReserved",
    ],
    ["evil-app-adopt", "  name: victim-credentials\n  onConflict: Adopt\n", "SecretOwnedByOther"],
    ["evil-app-merge", "  name: victim-credentials\n  onConflict: Merge\n", "SecretOwnedByOther"],
    ["evil-admin", "  name: shared-admin\n  onConflict: Adopt\n", "SecretOwnedByOther"],
  ];

  await t.step("each attacker is refused with the reason in its status", async () => {
    for (const [name, secret] of cases) await env.kube.apply(attacker(name, secret));
    await env.kube.apply(resource("PostgresDatabase", {
      name: "evil-pgdb",
      ns,
      annotations: { "dbtether.io/adopt": "true" },
      spec: "name: evil_pgdb\ntargetSecret: { name: victim-credentials }\n",
    }));
    for (const [name, , reason] of cases) {
      const u = await waitReason(env, { kind: "databaseuser", name, namespace: ns, reason });
      assertEquals(u.status?.phase, "Failed", name);
    }
    const p = await waitReason(env, {
      kind: "pgdb",
      name: "evil-pgdb",
      namespace: ns,
      reason: "SecretOwnedByOther",
    });
    assert(/DatabaseUser "victim"/.test(readyOf(p)!.message), readyOf(p)!.message);
    const admin = await env.getJson<Obj>("databaseuser", "evil-admin", ns);
    assert(/DBCluster "shared"/.test(readyOf(admin)!.message), readyOf(admin)!.message);
  });

  await t.step(
    "the victim's Secrets and the admin Secret are byte for byte unchanged",
    async () => {
      await new Promise((r) => setTimeout(r, 1500));
      assertEquals(await secretState(env, "dbtether-victim-state", ns), before.state);
      assertEquals(await secretState(env, "victim-credentials", ns), before.app);
      assertEquals(await secretState(env, "shared-admin", ns), before.admin);
      assert(
        await runsAs(env.pg, { user: creds.username!, password: creds.password!, database: "app" }),
        "the victim's password still logs in",
      );
      await env.waitPhase("databaseuser", "victim", "Ready", { namespace: ns });
      await env.waitPhase("dbcluster", "shared", "Connected");
    },
  );

  await t.step("Adopt still takes over a Secret nobody manages", async () => {
    await env.kube.apply(`apiVersion: v1
kind: Secret
metadata: { name: loose, namespace: ${ns} }
stringData: { foreign: "x" }
`);
    await env.kube.apply(attacker("adopter", "  name: loose\n  onConflict: Adopt\n"));
    await env.waitPhase("databaseuser", "adopter", "Ready", { namespace: ns });
    const d = (await secretData(env, { namespace: ns, name: "loose" }))!;
    assert(await runsAs(env.pg, { user: d.username!, password: d.password!, database: "app" }));
  });
});
