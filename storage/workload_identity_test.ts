/**
 * Workload identity without any static key: the environment a pod gets (a projected token
 * file plus role / client / provider settings) reaches each SDK and yields credentials that
 * the real storage server accepts. Only the token exchange hop is local
 * (tests/helpers/identity_endpoints.ts).
 *
 * Two ways in: the `env` option of createStore (what the composition root passes), tested in
 * this process; and the SDK's own default chain reading the process environment, tested in a
 * subprocess whose environment is exactly a pod's. Azure runs in a subprocess too because its
 * identity library speaks https only and Node's https trusts a test CA only through
 * NODE_EXTRA_CA_CERTS at process start.
 */
import { assert, assertEquals, assertMatch, assertStrictEquals } from "../tests/helpers/assert.ts";
import {
  makeTestTls,
  startAwsSts,
  startEntraAuthority,
  startGoogleSts,
} from "../tests/helpers/identity_endpoints.ts";
import {
  MINIO_PASSWORD,
  MINIO_USER,
  startAzurite,
  startFakeGcs,
  startMinio,
} from "../tests/helpers/storage_servers.ts";
import { assertStorageError, bytesStream } from "../tests/helpers/storage_conformance.ts";
import { createStore } from "./factory.ts";
import type { ObjectStore } from "./store.ts";

const ROLE_ARN = "arn:aws:iam::123456789012:role/dbtether-backups";
const INNER = Deno.env.get("DBTETHER_WI_INNER");

Deno.test("AWS IRSA: web identity token file + role ARN yield credentials (env option)", async () => {
  await using minio = await startMinio();
  await minio.createBucket("test");
  await using dir = await tempDir();
  const token = await writeToken(dir.path, "aws-token");
  await using sts = await startAwsSts({
    roleArn: ROLE_ARN,
    webIdentityToken: token.value,
    credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD },
  });
  const env = {
    AWS_WEB_IDENTITY_TOKEN_FILE: token.path,
    AWS_ROLE_ARN: ROLE_ARN,
    AWS_ROLE_SESSION_NAME: "dbtether",
    AWS_ENDPOINT_URL_STS: sts.url,
    AWS_REGION: "us-east-1",
  };
  await withStore(createStore(minio.location("test"), { env }), exercise);
  const exchange = sts.requests.find((r) => r.form["Action"] === "AssumeRoleWithWebIdentity");
  assert(exchange, "the SDK never called STS");
  assertStrictEquals(exchange.form["RoleArn"], ROLE_ARN);
  assertStrictEquals(exchange.form["RoleSessionName"], "dbtether");

  // A token STS rejects is reported as such, without the token in the message.
  const wrong = await writeToken(dir.path, "aws-wrong");
  await withStore(
    createStore(minio.location("test"), {
      env: { ...env, AWS_WEB_IDENTITY_TOKEN_FILE: wrong.path },
    }),
    async (store) => {
      const err = await store.probe().catch((e) => e);
      await assertStorageError(Promise.reject(err), "AccessDenied");
      assert(!String(err.message).includes(wrong.value));
    },
  );
});

Deno.test("AWS IRSA: the SDK's default chain reads a pod's environment (subprocess)", async () => {
  await using minio = await startMinio();
  await minio.createBucket("test");
  await using dir = await tempDir();
  const token = await writeToken(dir.path, "aws-token");
  await using sts = await startAwsSts({
    roleArn: ROLE_ARN,
    webIdentityToken: token.value,
    credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD },
  });
  await runInner("aws-default-chain", {
    // Exactly what the EKS pod identity webhook injects, plus the local STS endpoint.
    AWS_WEB_IDENTITY_TOKEN_FILE: token.path,
    AWS_ROLE_ARN: ROLE_ARN,
    AWS_REGION: "us-east-1",
    AWS_ENDPOINT_URL_STS: sts.url,
    AWS_EC2_METADATA_DISABLED: "true",
    DBTETHER_TEST_S3_ENDPOINT: minio.endpoint,
  });
  assert(sts.requests.some((r) => r.form["WebIdentityToken"] === token.value));
});

Deno.test({
  name: "inner: aws-default-chain",
  ignore: INNER !== "aws-default-chain",
  fn: async () => {
    const endpoint = Deno.env.get("DBTETHER_TEST_S3_ENDPOINT")!;
    await withStore(
      createStore({ s3: { bucket: "test", endpoint, forcePathStyle: true } }),
      exercise,
    );
  },
});

Deno.test("GCS workload identity federation: an external-account ADC file yields a token", async () => {
  await using gcs = await startFakeGcs();
  await gcs.createBucket("test");
  await using dir = await tempDir();
  const token = await writeToken(dir.path, "gcp-subject-token");
  const audience =
    "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/pool/providers/k8s";
  await using sts = await startGoogleSts({
    audience,
    subjectToken: token.value,
    accessToken: "ya29.federated-test-token",
  });
  const adc = `${dir.path}/adc.json`;
  await Deno.writeTextFile(
    adc,
    JSON.stringify({
      type: "external_account",
      audience,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      token_url: `${sts.url}/v1/token`,
      credential_source: { file: token.path },
    }),
  );
  await using proxy = await recordingProxy(gcs.endpoint);
  const location = { gcs: { bucket: "test", project: "test", endpoint: proxy.url } };
  await withStore(
    createStore(location, { env: { GOOGLE_APPLICATION_CREDENTIALS: adc } }),
    exercise,
  );
  assert(sts.requests.some((r) => r.form["subject_token"] === token.value));
  // The federated token reached the storage API on every request.
  assert(proxy.authorizations.length > 0);
  for (const line of proxy.authorizations) {
    assertMatch(line, / Bearer ya29\.federated-test-token$/, `sent without the token: ${line}`);
  }
});

Deno.test("Azure workload identity: federated token file + client id (subprocess, https)", async () => {
  await using tls = await makeTestTls();
  await runInner("azure", {
    NODE_EXTRA_CA_CERTS: tls.caFile,
    DBTETHER_TEST_TLS_DIR: tls.dir,
  });
});

Deno.test({
  name: "inner: azure",
  ignore: INNER !== "azure",
  fn: async () => {
    const tlsDir = Deno.env.get("DBTETHER_TEST_TLS_DIR")!;
    const tls = {
      certFile: `${tlsDir}/server.pem`,
      keyFile: `${tlsDir}/server.key`,
      caPem: await Deno.readTextFile(`${tlsDir}/ca.pem`),
      certPem: await Deno.readTextFile(`${tlsDir}/server.pem`),
      keyPem: await Deno.readTextFile(`${tlsDir}/server.key`),
    };
    await using azurite = await startAzurite({ tls });
    await azurite.createBucket("test");
    await using dir = await tempDir();
    const token = await writeToken(dir.path, "azure-federated-token");
    const tenantId = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const clientId = "0c5a9f1e-1111-2222-3333-444455556666";
    await using entra = await startEntraAuthority({
      tenantId,
      clientId,
      federatedToken: token.value,
      tls,
    });
    const env = {
      AZURE_FEDERATED_TOKEN_FILE: token.path,
      AZURE_CLIENT_ID: clientId,
      AZURE_TENANT_ID: tenantId,
      AZURE_AUTHORITY_HOST: entra.url,
    };
    await withStore(createStore(azurite.location("test"), { env }), exercise);
    const grant = entra.requests.find((r) => r.form["grant_type"] === "client_credentials");
    assert(grant, "the SDK never asked the authority for a token");
    assertStrictEquals(grant.form["client_assertion"], token.value);
    assertMatch(grant.form["scope"] ?? "", /storage\.azure\.com/);

    // A token the storage service rejects (wrong audience) is AccessDenied.
    await using other = await startEntraAuthority({
      tenantId,
      clientId,
      federatedToken: token.value,
      tls,
      audience: "https://management.azure.com",
    });
    await withStore(
      createStore(azurite.location("test"), { env: { ...env, AZURE_AUTHORITY_HOST: other.url } }),
      (store) => assertStorageError(store.probe(), "AccessDenied"),
    );
  },
});

/** What every workload-identity store must be able to do. */
async function exercise(store: ObjectStore): Promise<void> {
  await store.probe();
  const key = `wi/${crypto.randomUUID()}.sql.gz`;
  assertStrictEquals((await store.put(key, bytesStream(3 * 1024 * 1024))).size, 3 * 1024 * 1024);
  assertEquals((await store.list("wi/")).map((o) => o.key), [key]);
  assertStrictEquals(
    (await new Response(await store.get(key)).arrayBuffer()).byteLength,
    3 * 1024 * 1024,
  );
  await store.delete(key);
  assertStrictEquals(await store.head(key), undefined);
}

async function withStore(store: ObjectStore, fn: (store: ObjectStore) => Promise<void>) {
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

/** Runs one `inner:` test of this file in a fresh Deno with exactly `env` added. */
async function runInner(name: string, env: Record<string, string>): Promise<void> {
  const root = new URL("..", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "-A",
      "--no-check",
      "--filter",
      `inner: ${name}`,
      "storage/workload_identity_test.ts",
    ],
    cwd: root,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      DBTETHER_CACHE: Deno.env.get("DBTETHER_CACHE") ?? `${Deno.env.get("HOME")}/.cache/dbtether`,
      NO_COLOR: "1",
      RUST_BACKTRACE: "0",
      DBTETHER_WI_INNER: name,
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.success && /1 passed/.test(text), `inner test "${name}" failed:\n${text}`);
}

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "dbtether-wi-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Writes a projected-token-like file (a JWT-shaped string) and returns its path and value. */
async function writeToken(dir: string, name: string): Promise<{ path: string; value: string }> {
  const b64 = (v: unknown) => btoa(JSON.stringify(v)).replace(/=+$/, "");
  const value = `${b64({ alg: "RS256" })}.${
    b64({ sub: `system:serviceaccount:dbtether:${name}` })
  }.sig`;
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, value);
  return { path, value };
}

/**
 * A pass-through HTTP proxy in front of the real server that records Authorization headers:
 * fake-gcs-server accepts any token, so the proxy is how the test sees which one was sent.
 */
async function recordingProxy(
  target: string,
): Promise<{ url: string; authorizations: string[] } & AsyncDisposable> {
  const authorizations: string[] = [];
  const listening = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => listening.resolve() },
    async (req) => {
      const url = new URL(req.url);
      authorizations.push(
        `${req.method} ${url.pathname}${url.search} ${
          req.headers.get("authorization") ?? "(none)"
        }`,
      );
      const res = await fetch(`${target}${url.pathname}${url.search}`, {
        method: req.method,
        headers: req.headers,
        body: req.body,
        redirect: "manual",
      });
      return new Response(res.body, { status: res.status, headers: res.headers });
    },
  );
  await listening.promise;
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    authorizations,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}
