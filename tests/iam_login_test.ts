/**
 * The operator's own login by AWS IAM (DBCluster.spec.authentication: awsIam) against a real
 * apiserver and a real PostgreSQL. What RDS does is emulated: RDS checks an IAM token's
 * signature itself; here the test computes, from the same well-formed fake credentials the
 * program has in its environment, the token the program signs for the current refresh period,
 * and sets the role's password to it (the server keeps it as a SCRAM verifier). A login then
 * proves the program sent exactly that token; a new period's token after the password changed
 * proves it refreshes; the previous period's token left as the password proves it does not
 * keep sending an old one. Tokens must show up in no log line, status, or Event.
 *
 * Azure Entra (authentication: azureEntra): only the Entra authority is emulated
 * (tests/helpers/identity_endpoints.ts, over TLS). The program gets its token the way a pod
 * does, through workload identity (a federated token file, client and tenant id, authority host)
 * and `@azure/identity`; the authority hands out tokens the test chose, and the role's password is
 * set to the one the program must send. A short lifetime makes the program renew within seconds.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { readyOf, runsAs, secretData } from "./helpers/fixtures.ts";
import { resource } from "./helpers/tenant.ts";
import { waitFor } from "./helpers/wait.ts";
import type { TestEnv } from "./helpers/env.ts";
import {
  entraAccessToken,
  makeTestTls,
  startEntraAuthority,
} from "./helpers/identity_endpoints.ts";
import { AZURE_POSTGRES_SCOPE, periodStart, rdsAuthToken } from "../controllers/postgres/iam.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const REFRESH_MS = 15_000;
const ROLE = "iam_admin";
const REGION = "eu-west-1";
// Well-formed, not real: the AWS documentation's example keys.
const CREDS = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};

type Cluster = {
  status?: {
    phase?: string;
    message?: string;
    conditions?: { type: string; status: string; reason: string; message?: string }[];
  };
};

/** What both logins check on the server: the admin role's password, sessions, and DBCluster. */
function loginChecks(env: TestEnv, role: string, name: string) {
  const pg = env.pg!;
  return {
    setPassword: async (token: string) => {
      await pg.superSql(`ALTER ROLE ${role} PASSWORD '${token.replaceAll("'", "''")}'`);
    },
    /** Sessions of the role that started after `sinceMs`. */
    sessionsSince: async (sinceMs: number): Promise<number> =>
      Number(
        (await pg.superSql(
          `SELECT count(*) FROM pg_stat_activity WHERE usename = '${role}' ` +
            `AND backend_start > to_timestamp(${sinceMs / 1000})`,
        )).match(/\d+/)?.[0],
      ),
    dropSessions: () =>
      pg.superSql(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${role}'`,
      ),
    cluster: () => env.getJson<Cluster>("dbcluster", name),
    /** Applies the DBCluster `name` logging in as `role` with `authentication` (flow YAML). */
    applyCluster: (authentication: string) =>
      env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DBCluster
metadata: { name: ${name} }
spec:
  endpoint: ${pg.host}
  port: ${pg.port}
${pg.caFile ? "" : "  sslMode: disable\n"}  healthCheckInterval: 1s
  isolation: Keep
  authentication: ${authentication}
`),
  };
}

/** Asserts none of `secrets` is in the program's logs, the DBCluster's status or any Event. */
async function assertNoLeak(
  env: TestEnv,
  cluster: unknown,
  logs: string,
  secrets: Record<string, string>,
): Promise<void> {
  const events = (await env.kube.kubectl(["get", "events", "-A", "-o", "json"], { check: true }))
    .stdout;
  const status = JSON.stringify(cluster);
  assert(logs.length > 0);
  for (const text of [logs, events, status]) {
    for (const [what, secret] of Object.entries(secrets)) {
      assert(!text.includes(secret), `${what} leaked`);
    }
  }
}

Deno.test({ name: "DBCluster logs in with a refreshed AWS IAM token", ...opts }, async (t) => {
  await using env = await startEnv({
    pg: true,
    program: true,
    programArgs: ["--iam-token-refresh", `${REFRESH_MS / 1000}s`],
    programEnv: {
      AWS_ACCESS_KEY_ID: CREDS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
      AWS_REGION: REGION,
    },
  });
  const pg = env.pg;
  const req = { host: pg.host, port: pg.port, user: ROLE, region: REGION };
  const tokenFor = (ms: number) => rdsAuthToken(req, CREDS, periodStart(ms, REFRESH_MS));
  const periodOf = (ms: number) => periodStart(ms, REFRESH_MS).getTime();
  const { setPassword, sessionsSince, dropSessions, cluster, applyCluster } = loginChecks(
    env,
    ROLE,
    "iam",
  );
  /** Keeps the role's password at the current period's token (what RDS would accept now). */
  let synced: number | undefined;
  const sync = async () => {
    const now = Date.now();
    if (synced === periodOf(now)) return;
    await setPassword(await tokenFor(now));
    synced = periodOf(now);
  };
  const seen: string[] = [];

  await pg.superSql(`CREATE ROLE ${ROLE} LOGIN CREATEDB CREATEROLE`);
  await sync();
  await applyCluster(`{ type: awsIam, username: ${ROLE}, region: ${REGION} }`);

  await t.step(
    "connects with the token of the current period, and runs the controllers",
    async () => {
      await waitFor("Connected by IAM", async () => {
        await sync();
        return (await cluster())?.status?.phase === "Connected";
      });
      const ns = await env.namespace("iam");
      await env.kube.apply(
        resource("Database", { name: "shop", ns, spec: "clusterRef: { name: iam }\n" }),
      );
      await waitFor("Database Ready through the IAM login", async () => {
        await sync();
        const db = await env.getJson<Cluster>("database", "shop", ns);
        return db?.status?.phase === "Ready";
      });
      const owner = await pg.superSql(
        `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'`,
      );
      assert(owner.includes("shop"), `the Database made its owner role: ${owner}`);
      seen.push(await tokenFor(Date.now()));
    },
  );

  await t.step("a new connection in the next period sends the next token", async () => {
    const first = periodOf(Date.now());
    await waitFor("the next refresh period", async () => {
      await sync();
      return periodOf(Date.now()) !== first;
    }, { timeoutMs: REFRESH_MS * 3 });
    // Only the new token logs in now; old sessions are ended so the program must reconnect.
    await sync();
    await dropSessions();
    const cut = Date.now();
    await waitFor("a new session with the new token", async () => {
      await sync();
      return await sessionsSince(cut) > 0 && (await cluster())?.status?.phase === "Connected";
    });
    seen.push(await tokenFor(Date.now()));
    assert(seen[0] !== seen[1], "the periods' tokens differ");
  });

  await t.step("with an old token as the password, the login fails and says so", async () => {
    // The password is the previous period's token: a program that reused it would log in.
    await setPassword(await tokenFor(Date.now() - REFRESH_MS));
    synced = undefined;
    await dropSessions();
    const failed = await waitFor("AuthenticationFailed", async () => {
      const c = await cluster();
      return readyOf(c)?.reason === "AuthenticationFailed" ? c : undefined;
    });
    assertEquals(readyOf(failed)?.status, "False");
    assert(failed.status?.message?.includes(ROLE), failed.status?.message);
    await waitFor("Connected again after the password is the current token", async () => {
      await sync();
      return (await cluster())?.status?.phase === "Connected";
    });
  });

  const earlierLogs: string[] = [];
  await t.step("without AWS credentials, the reason says so", async () => {
    earlierLogs.push(env.program?.logs() ?? "");
    await env.killProgram();
    await env.startProgram([], { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" });
    const failed = await waitFor("AuthenticationFailed without credentials", async () => {
      const c = await cluster();
      const ready = readyOf(c);
      return ready?.reason === "AuthenticationFailed" &&
          c?.status?.message?.includes("Cannot get AWS credentials for an RDS IAM token")
        ? c
        : undefined;
    });
    assertEquals(readyOf(failed)?.status, "False");
  });

  await t.step("no token in logs, status or Events", async () => {
    const logs = [...earlierLogs, env.program?.logs() ?? ""].join("\n");
    await assertNoLeak(env, await cluster(), logs, {
      "a token": "X-Amz-Signature",
      "the secret key": CREDS.secretAccessKey,
    });
  });
});

const ENTRA_ROLE = "entra_admin";
const TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID = "0c5a9f1e-1111-2222-3333-444455556666";
/** Lifetime of the first token: the program renews it 5 minutes before, so 8 s after issue. */
const SHORT_LIFETIME_S = 300 + 8;

Deno.test({ name: "DBCluster logs in with a renewed Azure Entra token", ...opts }, async (t) => {
  await using tls = await makeTestTls();
  const federatedToken = `federated-${crypto.randomUUID()}`;
  const tokenFile = `${tls.dir}/azure-federated-token`;
  await Deno.writeTextFile(tokenFile, federatedToken);
  const token = (lifetimeSeconds: number) =>
    entraAccessToken({
      tenantId: TENANT_ID,
      clientId: CLIENT_ID,
      audience: "https://ossrdbms-aad.database.windows.net",
      lifetimeSeconds,
    });
  const tokens = [token(SHORT_LIFETIME_S), token(3600)];
  let issued = { accessToken: tokens[0]!, expiresIn: SHORT_LIFETIME_S };
  await using entra = await startEntraAuthority({
    tenantId: TENANT_ID,
    clientId: CLIENT_ID,
    federatedToken,
    tls,
    issue: () => issued,
  });
  const grants = () => entra.requests.filter((r) => r.form["grant_type"] === "client_credentials");
  await using env = await startEnv({
    pg: true,
    program: true,
    // What the Azure Workload Identity webhook injects, plus trust in the test CA.
    programEnv: {
      AZURE_CLIENT_ID: CLIENT_ID,
      AZURE_TENANT_ID: TENANT_ID,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
      AZURE_AUTHORITY_HOST: entra.url,
      NODE_EXTRA_CA_CERTS: tls.caFile,
    },
  });
  const pg = env.pg;
  const { setPassword, sessionsSince, dropSessions, cluster, applyCluster } = loginChecks(
    env,
    ENTRA_ROLE,
    "entra",
  );
  await pg.superSql(`CREATE ROLE ${ENTRA_ROLE} LOGIN CREATEDB CREATEROLE`);
  await setPassword(tokens[0]!);
  await applyCluster(`{ type: azureEntra, username: ${ENTRA_ROLE} }`);
  const ns = await env.namespace("entra-tenant");
  const databaseWorks = async (name: string) => {
    await env.kube.apply(
      resource("Database", { name, ns, spec: "clusterRef: { name: entra }\n" }),
    );
    await env.kube.apply(resource("DatabaseUser", {
      name: `${name}-app`,
      ns,
      spec: `databaseRef: { name: ${name} }\nprivileges: readwrite\n`,
    }));
    await env.waitPhase("databaseuser", `${name}-app`, "Ready", { namespace: ns });
    const s = (await secretData(env, { namespace: ns, name: `${name}-app-credentials` }))!;
    const login = { user: s.username!, password: s.password!, database: s.database ?? name };
    assert(await runsAs(pg, login), `the tenant's user logs in to ${name}`);
  };

  await t.step("logs in with the authority's token; a tenant's Database works", async () => {
    await waitFor(
      "Connected by Entra",
      async () => (await cluster())?.status?.phase === "Connected",
    );
    const grant = grants()[0];
    assert(grant, "the program never asked the authority for a token");
    assertEquals(grant.form["scope"], AZURE_POSTGRES_SCOPE);
    assertEquals(grant.form["client_assertion"], federatedToken);
    await databaseWorks("shop");
  });

  await t.step("a password the authority did not hand out fails the login", async () => {
    await setPassword(tokens[1]!);
    await dropSessions();
    const failed = await waitFor("AuthenticationFailed", async () => {
      const c = await cluster();
      return readyOf(c)?.reason === "AuthenticationFailed" ? c : undefined;
    });
    assert(failed.status?.message?.includes(ENTRA_ROLE), failed.status?.message);
  });

  await t.step("at renewal the program asks again and logs in with the new token", async () => {
    const asked = grants().length;
    issued = { accessToken: tokens[1]!, expiresIn: 3600 };
    const cut = Date.now();
    // The default wait (the react budget, 30 s) is far below token 1's 308 s: only the renewal
    // 5 minutes before expiry can pass it.
    await waitFor(
      "a new session with the renewed token",
      async () => await sessionsSince(cut) > 0 && (await cluster())?.status?.phase === "Connected",
    );
    assert(grants().length > asked, "the authority was asked again");
    await databaseWorks("orders");
  });

  await t.step("no token in logs, status or Events", async () => {
    await assertNoLeak(env, await cluster(), env.program?.logs() ?? "", {
      "the first token": tokens[0]!,
      "the renewed token": tokens[1]!,
      "the federated token": federatedToken,
    });
  });
});
