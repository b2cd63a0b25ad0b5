/**
 * Secret leaks (issue 13): a representative workload (databases, users of each rotation
 * strategy and Secret template, on-demand rotations, a backup and a restore) runs with the
 * controller at debug level and the server at log_statement=all. Every password generated or
 * read during the run (each user Secret seen, the admin password, the storage key, the manifest
 * signing key) is a canary; afterwards none may appear raw, URL-encoded or base64-encoded in
 * the controller's logs, Events, any dbtether resource, /metrics or the server log. A planted
 * canary proves the scan sees each of those places.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import {
  backupYaml,
  fingerprint,
  restoreYaml,
  SEED,
  storageYaml,
  waitPhase,
} from "../helpers/backup.ts";
import { startEnv, type TestEnv } from "../helpers/env.ts";
import { annotate, runsAs, secretData } from "../helpers/fixtures.ts";
import { freePort } from "../helpers/free_port.ts";
import { startMinio } from "../helpers/storage_servers.ts";
import { budget } from "../helpers/timeouts.ts";
import { waitFor } from "../helpers/wait.ts";
import { Canaries } from "./canaries.ts";
import { figure } from "./workload.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Users: [name, rotation strategy, Secret template]. */
const USERS = [
  ["inplace", "InPlace", "raw"],
  ["alternating", "Alternating", "raw"],
  ["dsn-user", "InPlace", "dsn"],
  ["env-user", "Alternating", "DATABASE"],
] as const;

/** A string that is nobody's password, put where a leak would land, to prove the scan sees it. */
const PLANTED = "plantedcanary7x4q";

function workload(ns: string): string {
  const dbs = [["app", "app_leaks"], ["copy", "copy_leaks"], ["planted", PLANTED]].map(([n, d]) =>
    `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: ${n}, namespace: ${ns} }
spec:
  clusterRef: { name: main }
  databaseName: ${d}
  deletionPolicy: Delete
`
  );
  const users = USERS.map(([n, strategy, template]) =>
    `apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: ${n}, namespace: ${ns} }
spec:
  databaseRef: { name: app }
  privileges: readwrite
  rotation: { strategy: ${strategy} }
  secret: { template: ${template} }
`
  );
  return [...dbs, ...users].join("---\n");
}

/** The password of a user Secret in any of its templates. */
function passwordOf(data: Record<string, string>): string[] {
  const out = Object.entries(data).filter(([k]) => /PASSWORD$|^password$/i.test(k)).map(([, v]) =>
    v
  );
  if (data.dsn) out.push(decodeURIComponent(new URL(data.dsn).password));
  return out;
}

/** Reads every user Secret and registers its passwords; returns them by user. */
async function harvest(env: TestEnv, ns: string, canaries: Canaries) {
  const seen = new Map<string, string[]>();
  for (const [name] of USERS) {
    const d = await secretData(env, { namespace: ns, name: `${name}-credentials` });
    if (!d) continue;
    const pws = passwordOf(d);
    for (const pw of pws) canaries.add(`${name}'s password`, pw);
    seen.set(name, pws);
  }
  return seen;
}

/** Everything the run wrote that a reader other than the Secret's consumer can see. */
async function sources(env: TestEnv, metricsPort: number): Promise<Record<string, string>> {
  const kinds = (await env.kube.kubectl(["api-resources", "--api-group=dbtether.io", "-o", "name"]))
    .stdout.split("\n").filter(Boolean).join(",");
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return {
    "the controller's logs": env.program?.logs() ?? "",
    "Events": (await env.kube.kubectl(["get", "events", "-A", "-o", "json"])).stdout,
    "dbtether resources": (await env.kube.kubectl(["get", kinds, "-A", "-o", "json"])).stdout,
    "/metrics": metrics,
    "the server log": await env.pg.readLog(),
  };
}

Deno.test(
  { name: "no password of the run leaks anywhere a reader could see", ...opts },
  async () => {
    const metricsPort = freePort();
    await using minio = await startMinio();
    await minio.createBucket("backups");
    await using env = await startEnv({
      pg: true,
      program: true,
      programArgs: ["--metrics-bind-address", `127.0.0.1:${metricsPort}`],
    });
    const canaries = new Canaries();
    canaries.add("the admin password", env.pg.admin.password);
    canaries.add("the storage secret key", minio.credentials.secretAccessKey);
    await env.kube.apply(env.clusterManifest("main"));
    await env.kube.apply(storageYaml("store", { server: minio }));
    const ns = await env.namespace("leaks");
    await env.kube.apply(workload(ns));
    for (const [name] of USERS) {
      await waitPhase(env, "databaseuser", name, "Ready", { namespace: ns });
    }
    await env.waitPhase("database", "copy", "Ready", { namespace: ns });
    assertEquals((await env.pg.psql(SEED, { database: "app_leaks" })).code, 0);
    const first = await harvest(env, ns, canaries);

    // Rotations, a backup and a restore run at the same time.
    for (const [name] of USERS) {
      await annotate(env, { kind: "databaseuser", namespace: ns, name }, "dbtether.io/rotate=r1");
    }
    await env.kube.apply(backupYaml(ns, "b1", "app", "store"));
    await env.kube.apply(
      restoreYaml(ns, "r1", "    backupRef:\n      name: b1", "copy", "  onConflict: drop\n"),
    );
    let rotated = new Map<string, string[]>();
    await waitFor("every password rotated", async () => {
      rotated = await harvest(env, ns, canaries);
      return USERS.every(([n]) => rotated.get(n)?.[0] !== first.get(n)?.[0]);
    }, { timeoutMs: budget("bulk"), intervalMs: 500 });
    await waitPhase(env, "backup", "b1", "Completed", {
      namespace: ns,
      timeoutMs: budget("backup"),
    });
    await waitPhase(env, "restore", "r1", "Completed", {
      namespace: ns,
      timeoutMs: budget("backup"),
    });
    assertEquals(await fingerprint(env, "copy_leaks"), await fingerprint(env, "app_leaks"));
    for (const [name] of USERS) {
      await waitPhase(env, "databaseuser", name, "Ready", { namespace: ns });
      const d = await secretData(env, { namespace: ns, name: `${name}-credentials` });
      const user = d?.username ?? d?.DATABASE_USER ?? new URL(d?.dsn ?? "x://u@h").username;
      assert(
        await runsAs(env.pg, { user, password: passwordOf(d!)[0]!, database: "app_leaks" }),
        `${name}'s rotated password logs in`,
      );
    }
    await harvest(env, ns, canaries);
    const signing = await secretData(env, {
      namespace: "default",
      name: "dbtether-backup-signing",
    });
    for (const [k, v] of Object.entries(signing ?? {})) canaries.add(`signing key ${k}`, v);

    const texts = await sources(env, metricsPort);
    const probe = new Canaries();
    probe.add("planted", PLANTED);
    const seenIn = new Set(probe.scan(texts).map((f) => f.source));
    figure("leaks: canaries registered", canaries.size);
    figure("leaks: planted canary found in", [...seenIn].join(", "));
    for (const place of ["the controller's logs", "dbtether resources", "the server log"]) {
      assert(seenIn.has(place), `the scan does not see the planted canary in ${place}`);
    }
    assert(canaries.size >= USERS.length * 2 + 2, `only ${canaries.size} canaries registered`);
    const leaks = canaries.scan(texts);
    figure("leaks: canaries found", leaks.length);
    assertEquals(leaks, []);
  },
);
