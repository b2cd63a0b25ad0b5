/**
 * DBCluster sslMode against real servers: a TLS server whose certificate (IP 127.0.0.1) is
 * signed by a CA the helper made, reached as 127.0.0.1 and as 127.0.0.2 (not in the
 * certificate), and a plaintext server. Each mode connects or is refused with a clear reason.
 */
import { assert, assertMatch } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { readyOf } from "./helpers/fixtures.ts";
import { startPostgres } from "./helpers/postgres.ts";
import { makeCa } from "./helpers/tls.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Cluster = {
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
};

function cluster(
  name: string,
  o: { host: string; port: number; sslMode?: string; caSecret?: string },
): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: DBCluster
metadata: { name: ${name} }
spec:
  endpoint: ${o.host}
  port: ${o.port}
${o.sslMode ? `  sslMode: ${o.sslMode}\n` : ""}${
    o.caSecret ? `  caSecretRef: { name: ${o.caSecret}, namespace: default }\n` : ""
  }  credentialsSecretRef: { name: tls-admin, namespace: default }
`;
}

function secret(name: string, data: Record<string, string>): string {
  return `apiVersion: v1
kind: Secret
metadata: { name: ${name}, namespace: default }
type: Opaque
data:
${Object.entries(data).map(([k, v]) => `  ${k}: ${btoa(v)}`).join("\n")}
`;
}

/** The Ready condition once it is settled: Connected, or a failure reason other than Pending. */
async function settled(env: TestEnv, name: string) {
  return await waitFor(`DBCluster ${name} to settle`, async () => {
    const ready = readyOf(await env.getJson<Cluster>("dbcluster", name));
    return ready && ready.reason !== "Pending" && ready.reason !== "" ? ready : undefined;
  });
}

Deno.test(
  { name: "DBCluster sslMode: require, verify-ca, verify-full, disable", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: { extraListen: ["127.0.0.2"] }, program: true });
    await using plain = await startPostgres({
      tls: false,
      adminName: env.pg.admin.user,
    });
    // Both servers accept the same admin: one credentials Secret for every cluster below.
    await plain.superSql(
      `SET log_statement = 'none'; ALTER ROLE "${plain.admin.user}" PASSWORD '${env.pg.admin.password}'`,
    );
    const wrongCaDir = await Deno.makeTempDir({ prefix: "dbtether-wrong-ca-" });
    try {
      await env.kube.apply(
        secret("tls-admin", { username: env.pg.admin.user, password: env.pg.admin.password }),
      );
      await env.kube.apply(secret("pg-ca", { "ca.crt": await Deno.readTextFile(env.pg.caFile!) }));
      const wrong = await makeCa(wrongCaDir, "another-ca");
      await env.kube.apply(secret("wrong-ca", { "ca.crt": await Deno.readTextFile(wrong) }));
      const tls = { host: env.pg.host, port: env.pg.port };

      await t.step("require (the default) connects, encrypted", async () => {
        await env.kube.apply(cluster("tls-require", tls));
        assertMatch((await settled(env, "tls-require")).reason, /^Connected$/);
      });
      await t.step("verify-ca and verify-full with the CA from the Secret connect", async () => {
        await env.kube.apply(
          cluster("tls-ca", { ...tls, sslMode: "verify-ca", caSecret: "pg-ca" }),
        );
        await env.kube.apply(
          cluster("tls-full", { ...tls, sslMode: "verify-full", caSecret: "pg-ca" }),
        );
        assertMatch((await settled(env, "tls-ca")).reason, /^Connected$/);
        assertMatch((await settled(env, "tls-full")).reason, /^Connected$/);
      });
      await t.step("a wrong CA is refused with a clear reason", async () => {
        await env.kube.apply(
          cluster("tls-wrong-ca", { ...tls, sslMode: "verify-ca", caSecret: "wrong-ca" }),
        );
        const r = await settled(env, "tls-wrong-ca");
        assert(r.status === "False", JSON.stringify(r));
        assertMatch(r.message, /certificate/i);
      });
      await t.step("verify-full refuses a host name not in the certificate", async () => {
        const other = { host: "127.0.0.2", port: env.pg.port };
        await env.kube.apply(
          cluster("tls-other-ip", { ...other, sslMode: "verify-ca", caSecret: "pg-ca" }),
        );
        await env.kube.apply(
          cluster("tls-wrong-host", { ...other, sslMode: "verify-full", caSecret: "pg-ca" }),
        );
        assertMatch((await settled(env, "tls-other-ip")).reason, /^Connected$/, "verify-ca passes");
        const r = await settled(env, "tls-wrong-host");
        assert(r.status === "False", JSON.stringify(r));
        assertMatch(r.message, /127\.0\.0\.2/);
        assertMatch(r.message, /certificate|altnames|hostname/i);
      });
      await t.step("a plaintext server: disable connects, require says what to set", async () => {
        await env.kube.apply(
          cluster("plain-disable", { host: plain.host, port: plain.port, sslMode: "disable" }),
        );
        await env.kube.apply(cluster("plain-require", { host: plain.host, port: plain.port }));
        assertMatch((await settled(env, "plain-disable")).reason, /^Connected$/);
        const r = await settled(env, "plain-require");
        assert(r.status === "False", JSON.stringify(r));
        assertMatch(r.message, /does not accept TLS/);
        assertMatch(r.message, /sslMode: disable/);
      });
    } finally {
      await Deno.remove(wrongCaDir, { recursive: true });
    }
  },
);
