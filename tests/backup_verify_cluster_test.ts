/**
 * BackupSchedule spec.verify.clusterRef through the real `dbtether run`: the Database on the
 * test server, the scratch database on a second real PostgreSQL server (admin not superuser)
 * behind DBCluster "far-pg", which admits one namespace only.
 * - the admitted namespace: the verification runs on the far server (its log says so) as a
 *   scratch owner role of its own, Passes with the recorded counts, and leaves no database or
 *   role there, nor a scratch database on the Database's server;
 * - a tenant of another namespace pointing clusterRef at "far-pg": VerificationError naming
 *   allowedNamespaces, and not one statement naming its scratch objects reaches that server.
 */
import { createHash } from "node:crypto";
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { conditionOf, mergePatch } from "./helpers/fixtures.ts";
import { type PgServer, startPostgres } from "./helpers/postgres.ts";
import {
  type Cond,
  databasesLike,
  events,
  schedule,
  schedYaml,
  seeded,
  servers,
  verificationAfter,
} from "./helpers/verify.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** DBCluster "far-pg" for `far`, admitting only `allowed`. */
function farCluster(far: PgServer, allowed: string): string {
  return `apiVersion: v1
kind: Secret
metadata:
  name: far-pg-admin
  namespace: default
type: Opaque
stringData:
  username: ${far.admin.user}
  password: "${far.admin.password}"
---
apiVersion: dbtether.io/v1alpha1
kind: DBCluster
metadata:
  name: far-pg
spec:
  endpoint: ${far.host}
  port: ${far.port}
${far.caFile ? "" : "  sslMode: disable\n"}  credentialsSecretRef:
    name: far-pg-admin
    namespace: default
  allowedNamespaces:
    names: [${allowed}]
`;
}

const VERIFY_FAR = "  verify:\n    every: 1\n    clusterRef:\n      name: far-pg\n";

/** The hash of the schedule's scratch names (verifyPlacement). */
async function scratchHash(env: TestEnv, ns: string): Promise<string> {
  const uid = (await schedule(env, ns, "nightly"))!.metadata.uid;
  return createHash("sha256").update(`verify/${uid}`).digest("hex");
}

async function verifiedFar(env: TestEnv, far: PgServer, ns: string): Promise<void> {
  await seeded(env, ns, "bkv_far");
  await env.kube.apply(schedYaml(ns, "nightly", "app", VERIFY_FAR));
  const s = await verificationAfter(env, ns, "nightly");
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { suspend: true },
  });
  const v = s.status!.lastVerification!;
  assertEquals(v.result, "Passed", JSON.stringify(s.status));
  assert(v.message!.includes("3 tables and 3503 rows"), v.message);
  const h = await scratchHash(env, ns);
  const scratch = `bkv_far_verify_${h.slice(0, 8)}`;
  const log = await far.readLog();
  assert(log.includes(`CREATE DATABASE "${scratch}"`), "the scratch database was on far-pg");
  assert(log.includes(`"dbtether_verifyowner_${h.slice(0, 16)}"`), "its own owner role");
  const left = await far.superSql(
    "SELECT string_agg(rolname, ',') FROM pg_roles WHERE starts_with(rolname, 'dbtether_verify')",
  );
  assertEquals(left.trim(), "", "no role left on far-pg");
  assertEquals(
    (await far.superSql(`SELECT count(*) FROM pg_database WHERE datname = '${scratch}'`)).trim(),
    "0",
  );
  assertEquals(await databasesLike(env, "bkv_far_verify_"), [], "none on the Database's server");
  assert(!(await env.pg.readLog()).includes(`CREATE DATABASE "${scratch}"`));
}

async function refusedFar(env: TestEnv, far: PgServer, ns: string): Promise<void> {
  await seeded(env, ns, "bkv_evil");
  await env.kube.apply(schedYaml(ns, "nightly", "app", VERIFY_FAR));
  const s = await verificationAfter(env, ns, "nightly");
  await mergePatch(env, { kind: "backupschedule", namespace: ns, name: "nightly" }, {
    spec: { suspend: true },
  });
  const v = s.status!.lastVerification!;
  assertEquals(v.result, "Error", JSON.stringify(v));
  assert(
    v.message!.includes(`may not use DBCluster "far-pg"`) &&
      v.message!.includes("allowedNamespaces"),
    v.message,
  );
  const cond = conditionOf(s, "Verified") as Cond | undefined;
  assertEquals([cond?.status, cond?.reason], ["False", "VerificationError"]);
  assert((await events(env, ns)).some((e) => e.reason === "VerificationError"));
  const h = await scratchHash(env, ns);
  const log = await far.readLog();
  assert(!log.includes(h.slice(0, 8)) && !log.includes("bkv_evil"), "nothing reached far-pg");
  assertEquals(await databasesLike(env, "bkv_evil_verify_"), []);
}

Deno.test({ name: "BackupSchedule verify.clusterRef on another server", ...opts }, async (t) => {
  await using env = await startEnv({ pg: true, program: true });
  await using _minio = await servers(env);
  await using far = await startPostgres();
  const ok = await env.namespace("bkv-far");
  const evil = await env.namespace("bkv-evil");
  await env.kube.apply(farCluster(far, ok));
  await env.waitPhase("dbcluster", "far-pg", "Connected");
  const results = await Promise.allSettled([
    verifiedFar(env, far, ok),
    refusedFar(env, far, evil),
  ]);
  const names = ["verified on far-pg", "a namespace far-pg does not admit is refused"];
  for (const [i, r] of results.entries()) {
    await t.step(names[i]!, () => {
      if (r.status === "rejected") throw r.reason;
    });
  }
});
