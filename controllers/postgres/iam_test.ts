import {
  assert,
  assertEquals,
  assertNotEquals,
  assertRejects,
} from "../../tests/helpers/assert.ts";
import { Signer } from "@aws-sdk/rds-signer";
import {
  awsIamTokenSource,
  azureEntraTokenSource,
  periodStart,
  rdsAuthToken,
  refreshPeriodProblem,
} from "./iam.ts";

// Well-formed, not real: the AWS documentation's example keys.
const creds = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};
const req = {
  host: "db.cluster-abc.eu-west-1.rds.amazonaws.com",
  port: 5432,
  user: "dbtether_admin",
  region: "eu-west-1",
};

/** Runs `fn` with `new Date()` and Date.now() pinned to `at` (the Signer reads the wall clock). */
async function atTime<T>(at: Date, fn: () => Promise<T>): Promise<T> {
  const Real = Date;
  class Pinned extends Real {
    constructor(...args: [number?]) {
      super(args[0] ?? at.getTime());
    }
    static override now(): number {
      return at.getTime();
    }
  }
  globalThis.Date = Pinned as DateConstructor;
  try {
    return await fn();
  } finally {
    globalThis.Date = Real;
  }
}

Deno.test("rdsAuthToken equals the token of @aws-sdk/rds-signer at the same time", async () => {
  const at = new Date("2026-12-02T23:40:00Z");
  const ours = await rdsAuthToken(req, creds, at);
  const theirs = await atTime(at, () =>
    new Signer({
      hostname: req.host,
      port: req.port,
      username: req.user,
      region: req.region,
      credentials: creds,
    }).getAuthToken());
  assertEquals(ours, theirs);
  assert(ours.startsWith(`${req.host}:5432/?Action=connect&DBUser=dbtether_admin&`), ours);
  assert(ours.includes("X-Amz-Date=20261202T234000Z"), ours);
  assert(ours.includes("X-Amz-Expires=900"), ours);
  assert(ours.includes("%2F20261202%2Feu-west-1%2Frds-db%2Faws4_request"), ours);
});

Deno.test("rdsAuthToken with a session token matches the Signer too", async () => {
  const at = new Date("2026-01-01T00:00:07Z");
  const session = { ...creds, sessionToken: "FwoGZXIvYXdzE+/=token" };
  const hostile = { ...req, user: "a b&c=d/\"'" };
  const ours = await rdsAuthToken(hostile, session, at);
  const theirs = await atTime(at, () =>
    new Signer({
      hostname: hostile.host,
      port: hostile.port,
      username: hostile.user,
      region: hostile.region,
      credentials: session,
    }).getAuthToken());
  assertEquals(ours, theirs);
  assert(ours.includes("X-Amz-Security-Token="), ours);
});

Deno.test("periodStart aligns to the period in whole seconds", () => {
  assertEquals(
    periodStart(Date.UTC(2026, 0, 1, 0, 9, 59, 999), 600_000).toISOString(),
    "2026-01-01T00:00:00.000Z",
  );
  assertEquals(
    periodStart(Date.UTC(2026, 0, 1, 0, 10), 600_000).toISOString(),
    "2026-01-01T00:10:00.000Z",
  );
  assertEquals(periodStart(1_500, 700).getTime(), 1_000);
});

Deno.test("refreshPeriodProblem keeps a token valid for the whole period", () => {
  assertEquals(refreshPeriodProblem(600_000), undefined);
  assertEquals(refreshPeriodProblem(840_000), undefined);
  assert(refreshPeriodProblem(841_000));
  assert(refreshPeriodProblem(500));
});

Deno.test("awsIamTokenSource signs once per period and again in the next", async () => {
  let now = Date.UTC(2026, 0, 1, 0, 0, 5);
  let calls = 0;
  const source = awsIamTokenSource({
    ...req,
    refreshMs: 20_000,
    now: () => now,
    credentials: () => {
      calls++;
      return Promise.resolve(creds);
    },
  });
  const first = await source.token();
  now += 10_000;
  assertEquals(await source.token(), first);
  assertEquals(first, await rdsAuthToken(req, creds, new Date(Date.UTC(2026, 0, 1))));
  now += 10_000;
  const second = await source.token();
  assertNotEquals(second, first);
  assertEquals(second, await rdsAuthToken(req, creds, new Date(Date.UTC(2026, 0, 1, 0, 0, 20))));
  assertEquals(calls, 2);
  assert(!source.id.includes(creds.secretAccessKey));
});

Deno.test("awsIamTokenSource: missing credentials give a clear error", async () => {
  const source = awsIamTokenSource({
    ...req,
    credentials: () => Promise.reject(new Error("Could not load credentials from any providers")),
  });
  await assertRejects(
    () => source.token(),
    Error,
    "Cannot get AWS credentials for an RDS IAM token: Could not load credentials",
  );
});

Deno.test("azureEntraTokenSource renews five minutes before expiry", async () => {
  let now = 0;
  let n = 0;
  const source = azureEntraTokenSource({
    host: "x.postgres.database.azure.com",
    user: "dbtether",
    now: () => now,
    getToken: (scope) => {
      assertEquals(scope, "https://ossrdbms-aad.database.windows.net/.default");
      n++;
      return Promise.resolve({ token: `t${n}`, expiresOnTimestamp: now + 3_600_000 });
    },
  });
  assertEquals(await source.token(), "t1");
  now = 3_600_000 - 300_001;
  assertEquals(await source.token(), "t1");
  now = 3_600_000 - 300_000;
  assertEquals(await source.token(), "t2");
  const failing = azureEntraTokenSource({
    host: "h",
    user: "u",
    getToken: () => Promise.resolve(null),
  });
  await assertRejects(() => failing.token(), Error, "none was returned");
});
