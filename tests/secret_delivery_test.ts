/**
 * Issue 15, credentials delivery, against the real apiserver and PostgreSQL: DatabaseUser
 * spec.secret.namespace delivers a copy only where the DBCluster's spec.secretDelivery permits
 * the pair; the copy's password logs in; refused pairs (kube-system, another tenant) write
 * nothing there and say why; an unrelated Secret of the same name is never replaced; removing
 * the permission deletes the copy, and so does deleting the user, also after a SIGKILL. Then the
 * External Secrets Operator recipe (examples/eso/) is applied with ESO's own CRDs installed
 * from its published schema (scripts/install-eso-crds.sh).
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { type Obj, runsAs, secretData, waitReason } from "./helpers/fixtures.ts";
import { resource, warnings } from "./helpers/tenant.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const root = new URL("../", import.meta.url).pathname;

/** Names and resourceVersions of every Secret in `ns`: what a write or delete there changes. */
async function secretsIn(env: TestEnv, ns: string): Promise<string[]> {
  const r = await env.kube.kubectl(["get", "secrets", "-n", ns, "-o", "json"], { check: true });
  const items = (JSON.parse(r.stdout) as { items: Obj[] }).items;
  return items.map((s) => `${s.metadata.name}@${s.metadata.resourceVersion}`).sort();
}

function allowList(pairs: [string, string[]][]): string {
  const lines = pairs.map(([from, to]) =>
    `      - sourceNamespace: ${from}\n        targetNamespaces: [${to.join(", ")}]\n`
  );
  return `  secretDelivery:\n    allow:\n${lines.join("")}`;
}

async function gone(env: TestEnv, ref: { namespace: string; name: string }, what: string) {
  await waitFor(
    what,
    async () =>
      (await env.getJson("secret", ref.name, ref.namespace)) === undefined ? true : undefined,
    {
      timeoutMs: budget("ready"),
    },
  );
}

Deno.test({ name: "DatabaseUser spec.secret.namespace delivery", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  const team = await env.namespace("team-a");
  const app = await env.namespace("app-a");
  const other = await env.namespace("team-b");
  await env.kube.apply(
    env.clusterManifest("main", { extraSpec: allowList([[team, [app]]]) }),
  );
  // Someone else's Secret in the target namespace, of the name a user will ask for.
  await env.kube.apply(`apiVersion: v1
kind: Secret
metadata: { name: squat-credentials, namespace: ${app} }
stringData: { password: not-yours }
`);
  const before = {
    system: await secretsIn(env, "kube-system"),
    other: await secretsIn(env, other),
    squat: (await env.getJson<Obj>("secret", "squat-credentials", app))!.metadata.resourceVersion,
  };
  const user = (name: string, to: string) =>
    resource("DatabaseUser", {
      name,
      ns: team,
      spec: `databaseRef: { name: shop }\nsecret: { namespace: ${to} }\n`,
    });
  await env.kube.apply([
    resource("Database", { name: "shop", ns: team, spec: "clusterRef: { name: main }\n" }),
    user("app", app),
    user("gone", app),
    user("squat", app),
    user("evil", "kube-system"),
    user("nosy", other),
  ].join("---\n"));
  const copy = { namespace: app, name: "app-credentials" };

  await t.step("allowed: the copy is in the target namespace, labelled, and logs in", async () => {
    await env.waitPhase("databaseuser", "app", "Ready", { namespace: team });
    const data = await waitFor("the delivered copy", () => secretData(env, copy), {
      timeoutMs: budget("ready"),
    });
    assertEquals(data, await secretData(env, { namespace: team, name: "app-credentials" }));
    const s = (await env.getJson<Obj>("secret", copy.name, app))!;
    assertEquals(s.metadata.labels?.["dbtether.io/source-namespace"], team);
    const u = (await env.getJson<{ metadata: { uid: string } }>("databaseuser", "app", team))!;
    assertEquals(s.metadata.labels?.["dbtether.io/source-uid"], u.metadata.uid);
    assertEquals(s.metadata.annotations?.["dbtether.io/delivered-from"], `${team}/app`);
    const login = { user: data.username!, password: data.password!, database: data.database! };
    assert(await runsAs(env.pg, login), "the copy's password logs in");
  });

  await t.step(
    "refused: kube-system and another tenant get nothing, and status says why",
    async () => {
      for (const [name, to] of [["evil", "kube-system"], ["nosy", other]] as const) {
        const u = await waitReason<Obj>(env, {
          kind: "databaseuser",
          namespace: team,
          name,
          reason: "SecretDeliveryNotAllowed",
        });
        const msg = u.status?.conditions?.find((c) => c.type === "Ready")?.message ?? "";
        assert(msg.includes(`namespace "${to}"`) && msg.includes("spec.secretDelivery"), msg);
        const events = await warnings(env, name, team);
        assert(events.some((e) => e.startsWith("SecretDeliveryNotAllowed: ")), events.join("\n"));
        // Its own Secret in its own namespace is still written.
        assert(await secretData(env, { namespace: team, name: `${name}-credentials` }));
      }
      assertEquals(await secretsIn(env, "kube-system"), before.system);
      assertEquals(await secretsIn(env, other), before.other);
    },
  );

  await t.step("an unrelated Secret of that name is never replaced", async () => {
    const u = await waitReason<Obj>(env, {
      kind: "databaseuser",
      namespace: team,
      name: "squat",
      reason: "SecretDeliveryConflict",
    });
    const msg = u.status?.conditions?.find((c) => c.type === "Ready")?.message ?? "";
    assert(msg.includes("never replaces an existing Secret"), msg);
    const s = (await env.getJson<Obj>("secret", "squat-credentials", app))!;
    assertEquals(s.metadata.resourceVersion, before.squat);
    assertEquals((await secretData(env, { namespace: app, name: "squat-credentials" }))!, {
      password: "not-yours",
    });
  });

  await t.step("deleting the user deletes the copy, even after a SIGKILL", async () => {
    const ref = { namespace: app, name: "gone-credentials" };
    await waitFor("gone's copy", () => secretData(env, ref), { timeoutMs: budget("ready") });
    await env.killProgram("SIGKILL");
    await env.kube.kubectl(["delete", "databaseuser", "gone", "-n", team, "--wait=false"], {
      check: true,
    });
    // The finalizer holds the user while no operator runs; the copy is still there.
    assert(await env.getJson("databaseuser", "gone", team));
    await env.startProgram();
    await gone(env, ref, "gone's copy deleted");
    await waitFor(
      "gone deleted",
      async () =>
        (await env.getJson("databaseuser", "gone", team)) === undefined ? true : undefined,
      {
        timeoutMs: budget("ready"),
      },
    );
  });

  await t.step("removing the permission deletes the copy and says why", async () => {
    await env.kube.apply(env.clusterManifest("main", { extraSpec: allowList([[team, [other]]]) }));
    await gone(env, copy, "the copy deleted");
    await waitReason(env, {
      kind: "databaseuser",
      namespace: team,
      name: "app",
      reason: "SecretDeliveryNotAllowed",
    });
    assert(await secretData(env, { namespace: team, name: "app-credentials" }));
    assertEquals(await secretsIn(env, "kube-system"), before.system);
  });

  await t.step("examples/eso/ applies against External Secrets Operator's CRDs", async () => {
    await esoRecipe(env, team);
  });
});

/**
 * Installs ESO's PushSecret and SecretStore CRDs (its published schema, pinned) and applies the
 * three recipes in `ns`, where DatabaseUser app's Secret is: the apiserver validates every field
 * against ESO's schema, and each PushSecret names that Secret and keys it has. ESO's controller
 * itself (and the cloud stores) are not run here.
 */
async function esoRecipe(env: TestEnv, ns: string): Promise<void> {
  const out = await new Deno.Command("bash", {
    args: [`${root}scripts/install-eso-crds.sh`],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert(out.success, "scripts/install-eso-crds.sh failed");
  const dir = new TextDecoder().decode(out.stdout).trim();
  for (const f of ["pushsecrets", "secretstores"]) {
    // create, not apply: the SecretStore CRD is too large for the last-applied annotation.
    await env.kube.kubectl(["create", "-f", `${dir}/external-secrets.io_${f}.yaml`], {
      check: true,
    });
  }
  await waitFor("ESO CRDs established", async () => {
    const r = await env.kube.kubectl(["get", "pushsecrets,secretstores", "-n", ns]);
    return r.code === 0 ? true : undefined;
  }, { timeoutMs: budget("react") });
  const keys = Object.keys((await secretData(env, { namespace: ns, name: "app-credentials" }))!);
  for (const f of ["push_aws_secrets_manager", "push_vault", "push_gcp_secret_manager"]) {
    const yaml = (await Deno.readTextFile(`${root}examples/eso/${f}.yaml`))
      .replaceAll("namespace: shop", `namespace: ${ns}`);
    await env.kube.apply(yaml);
  }
  const r = await env.kube.kubectl(["get", "pushsecrets", "-n", ns, "-o", "json"], {
    check: true,
  });
  type Push = {
    spec: { selector: { secret: { name: string } }; data: { match: { secretKey: string } }[] };
  };
  const pushes = (JSON.parse(r.stdout) as { items: Push[] }).items;
  assertEquals(pushes.length, 3);
  for (const p of pushes) {
    assertEquals(p.spec.selector.secret.name, "app-credentials");
    for (const d of p.spec.data) assert(keys.includes(d.match.secretKey), d.match.secretKey);
  }
  const stores = await env.kube.kubectl(["get", "secretstores", "-n", ns, "-o", "name"], {
    check: true,
  });
  assertEquals(stores.stdout.trim().split("\n").length, 3);
}
