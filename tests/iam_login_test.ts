/**
 * The operator's own login by AWS IAM (DBCluster.spec.authentication: awsIam) against a real
 * apiserver and a real PostgreSQL. What RDS does is emulated: RDS checks an IAM token's
 * signature itself; here the test computes, from the same well-formed fake credentials the
 * program has in its environment, the token the program signs for the current refresh period,
 * and sets the role's password to it (the server keeps it as a SCRAM verifier). A login then
 * proves the program sent exactly that token; a new period's token after the password changed
 * proves it refreshes; the previous period's token left as the password proves it does not
 * keep sending an old one. Tokens must show up in no log line, status, or Event.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { startEnv } from "./helpers/env.ts";
import { readyOf } from "./helpers/fixtures.ts";
import { resource } from "./helpers/tenant.ts";
import { waitFor } from "./helpers/wait.ts";
import { periodStart, rdsAuthToken } from "../controllers/postgres/iam.ts";

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
  const setPassword = async (token: string) => {
    await pg.superSql(`ALTER ROLE ${ROLE} PASSWORD '${token.replaceAll("'", "''")}'`);
  };
  /** Keeps the role's password at the current period's token (what RDS would accept now). */
  let synced: number | undefined;
  const sync = async () => {
    const now = Date.now();
    if (synced === periodOf(now)) return;
    await setPassword(await tokenFor(now));
    synced = periodOf(now);
  };
  /** Sessions of the role that started after `sinceMs`. */
  const sessionsSince = async (sinceMs: number): Promise<number> =>
    Number(
      (await pg.superSql(
        `SELECT count(*) FROM pg_stat_activity WHERE usename = '${ROLE}' ` +
          `AND backend_start > to_timestamp(${sinceMs / 1000})`,
      )).match(/\d+/)?.[0],
    );
  const dropSessions = () =>
    pg.superSql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${ROLE}'`);
  const cluster = () => env.getJson<Cluster>("dbcluster", "iam");
  const seen: string[] = [];

  await pg.superSql(`CREATE ROLE ${ROLE} LOGIN CREATEDB CREATEROLE`);
  await sync();
  await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: DBCluster
metadata: { name: iam }
spec:
  endpoint: ${pg.host}
  port: ${pg.port}
${pg.caFile ? "" : "  sslMode: disable\n"}  healthCheckInterval: 1s
  isolation: Keep
  authentication: { type: awsIam, username: ${ROLE}, region: ${REGION} }
`);

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
    const events = (await env.kube.kubectl(["get", "events", "-A", "-o", "json"], { check: true }))
      .stdout;
    const status = JSON.stringify(await cluster());
    const logs = [...earlierLogs, env.program?.logs() ?? ""].join("\n");
    assert(logs.length > 0);
    for (const text of [logs, events, status]) {
      assert(!text.includes("X-Amz-Signature"), "a token leaked");
      assert(!text.includes(CREDS.secretAccessKey), "the secret key leaked");
    }
  });
});
