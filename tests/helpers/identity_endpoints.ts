/**
 * Minimal local token endpoints for the one hop of workload identity that cannot run here:
 * AWS STS AssumeRoleWithWebIdentity, Google STS token exchange, and the Entra ID (Azure AD)
 * authority. Each checks the projected service-account token it receives and hands out
 * credentials that the real storage server accepts; the storage server itself stays real.
 *
 * ```ts
 * await using sts = await startAwsSts({ roleArn, webIdentityToken, credentials });
 * // AWS_ENDPOINT_URL_STS=sts.url, AWS_ROLE_ARN=roleArn, AWS_WEB_IDENTITY_TOKEN_FILE=...
 * ```
 */

/** One request a token endpoint received (form fields; secrets stay in the test). */
export interface TokenRequest {
  path: string;
  form: Record<string, string>;
}

/** A running token endpoint; `await using` shuts it down. */
export interface TokenEndpoint extends AsyncDisposable {
  /** Base URL (http, or https when started with TLS). */
  readonly url: string;
  /** Requests received so far, accepted or not. */
  readonly requests: readonly TokenRequest[];
}

/** PEM files of a throwaway CA and a 127.0.0.1 server certificate it signed. */
export interface TestTls extends AsyncDisposable {
  readonly dir: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** openssl req flags for a new unencrypted P-256 key (both the CA's and the server's). */
const P256_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/**
 * Creates a CA and a server certificate for 127.0.0.1/localhost with openssl. A separate CA
 * is needed because rustls (behind Deno's TLS) rejects a CA certificate used as a server's.
 */
export async function makeTestTls(): Promise<TestTls> {
  const dir = await Deno.makeTempDir({ prefix: "dbtether-tls-" });
  const run = async (args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  try {
    await run([
      "req",
      "-x509",
      ...P256_KEY,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=dbtether test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign",
    ]);
    await run([
      "req",
      ...P256_KEY,
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      "/CN=127.0.0.1",
    ]);
    await Deno.writeTextFile(
      `${dir}/ext.cnf`,
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" +
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n",
    );
    await run([
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.pem",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    ]);
    // Azurite reads a PKCS#8 key; openssl 3 already writes that form.
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  return {
    dir,
    caFile: `${dir}/ca.pem`,
    certFile: `${dir}/server.pem`,
    keyFile: `${dir}/server.key`,
    caPem: await Deno.readTextFile(`${dir}/ca.pem`),
    certPem: await Deno.readTextFile(`${dir}/server.pem`),
    keyPem: await Deno.readTextFile(`${dir}/server.key`),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Options of {@link startAwsSts}. */
export interface AwsStsOptions {
  roleArn: string;
  /** The projected service-account token the pod presents (content of the token file). */
  webIdentityToken: string;
  /** What a successful AssumeRoleWithWebIdentity returns (keys the storage server accepts). */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** AWS STS's AssumeRoleWithWebIdentity (query protocol, XML answer). */
export function startAwsSts(opts: AwsStsOptions): Promise<TokenEndpoint> {
  return serve({}, (req) => {
    const f = req.form;
    if (f["Action"] !== "AssumeRoleWithWebIdentity") return xmlError(400, "InvalidAction");
    if (f["RoleArn"] !== opts.roleArn || f["WebIdentityToken"] !== opts.webIdentityToken) {
      return xmlError(403, "AccessDenied");
    }
    const c = opts.credentials;
    const expiration = new Date(Date.now() + 3600_000).toISOString();
    const session = f["RoleSessionName"] ?? "session";
    return new Response(
      `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>${c.accessKeyId}</AccessKeyId>
      <SecretAccessKey>${c.secretAccessKey}</SecretAccessKey>
      ${c.sessionToken ? `<SessionToken>${c.sessionToken}</SessionToken>` : ""}
      <Expiration>${expiration}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>${
        opts.roleArn.replace(":role/", ":assumed-role/").replace(":iam:", ":sts:")
      }/${session}</Arn>
      <AssumedRoleId>AROATEST:${session}</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>${crypto.randomUUID()}</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`,
      { headers: { "content-type": "text/xml" } },
    );
  });
}

/** Options of {@link startGoogleSts}. */
export interface GoogleStsOptions {
  /** The workload identity provider, `//iam.googleapis.com/projects/N/locations/global/...`. */
  audience: string;
  /** The subject token the pod presents (content of the credential_source file). */
  subjectToken: string;
  /** The federated access token handed out. */
  accessToken: string;
}

/** Google's Security Token Service token exchange (`token_url` of an external_account file). */
export function startGoogleSts(opts: GoogleStsOptions): Promise<TokenEndpoint> {
  return serve({}, (req) => {
    const f = req.form;
    if (f["grant_type"] !== "urn:ietf:params:oauth:grant-type:token-exchange") {
      return oauthError(400, "unsupported_grant_type");
    }
    if (f["audience"] !== opts.audience || f["subject_token"] !== opts.subjectToken) {
      return oauthError(401, "invalid_grant");
    }
    return Response.json({
      access_token: opts.accessToken,
      issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
      token_type: "Bearer",
      expires_in: 3600,
    });
  });
}

/** Options of {@link startEntraAuthority}. */
export interface EntraOptions {
  tenantId: string;
  clientId: string;
  /** The projected service-account token, sent as `client_assertion`. */
  federatedToken: string;
  /** MSAL accepts only https authorities. */
  tls: { certPem: string; keyPem: string };
  /** Audience of the issued access token; Azurite accepts `https://storage.azure.com`. */
  audience?: string;
  /**
   * The access token and lifetime (`expires_in`, seconds) of each accepted request, for a test
   * that must know what the client sends on; default a new {@link entraAccessToken} of an hour.
   */
  issue?: () => { accessToken: string; expiresIn: number };
}

/**
 * An unsigned Entra access token (JWT) with the claims Azurite's `--oauth basic` checks, valid
 * `lifetimeSeconds` from now.
 */
export function entraAccessToken(
  o: { tenantId: string; clientId: string; audience: string; lifetimeSeconds: number },
): string {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    aud: o.audience,
    iss: `https://sts.windows.net/${o.tenantId}/`,
    iat: now,
    nbf: now - 60,
    exp: now + o.lifetimeSeconds,
    appid: o.clientId,
    oid: crypto.randomUUID(),
    sub: crypto.randomUUID(),
    tid: o.tenantId,
    ver: "1.0",
  };
  return `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`;
}

/**
 * The Entra ID authority: OpenID metadata and the v2.0 token endpoint, answering the
 * client-credentials grant with a client assertion (what WorkloadIdentityCredential sends).
 * The access token is an unsigned JWT with the claims Azurite's `--oauth basic` checks, or
 * what `issue` hands out.
 */
export async function startEntraAuthority(opts: EntraOptions): Promise<TokenEndpoint> {
  const tenant = opts.tenantId;
  let base = "";
  const endpoint = await serve({ tls: opts.tls }, (req) => {
    if (req.method === "GET" && req.path.endsWith("/.well-known/openid-configuration")) {
      return Response.json({
        token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${base}/${tenant}/oauth2/v2.0/logout`,
        issuer: `${base}/${tenant}/v2.0`,
        jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
        response_types_supported: ["code", "id_token", "token"],
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
      });
    }
    if (req.method !== "POST" || req.path !== `/${tenant}/oauth2/v2.0/token`) {
      return oauthError(404, "not_found");
    }
    const f = req.form;
    const ok = f["grant_type"] === "client_credentials" &&
      f["client_id"] === opts.clientId &&
      f["client_assertion_type"] === "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" &&
      f["client_assertion"] === opts.federatedToken;
    if (!ok) return oauthError(401, "invalid_client");
    const issued = opts.issue?.() ?? {
      accessToken: entraAccessToken({
        tenantId: tenant,
        clientId: opts.clientId,
        audience: opts.audience ?? "https://storage.azure.com",
        lifetimeSeconds: 3600,
      }),
      expiresIn: 3599,
    };
    return Response.json({
      token_type: "Bearer",
      expires_in: issued.expiresIn,
      ext_expires_in: issued.expiresIn,
      access_token: issued.accessToken,
    });
  });
  base = endpoint.url;
  return endpoint;
}

// ------------------------------------------------------------------------------------------

interface Request {
  method: string;
  path: string;
  form: Record<string, string>;
}

async function serve(
  opts: { tls?: { certPem: string; keyPem: string } },
  handle: (req: Request) => Response,
): Promise<TokenEndpoint> {
  const requests: TokenRequest[] = [];
  const listening = Promise.withResolvers<void>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => listening.resolve(),
    ...(opts.tls ? { cert: opts.tls.certPem, key: opts.tls.keyPem } : {}),
  }, async (r) => {
    const url = new URL(r.url);
    const form: Record<string, string> = Object.fromEntries(url.searchParams);
    if (r.method === "POST") {
      for (const [k, v] of new URLSearchParams(await r.text())) form[k] = v;
    }
    requests.push({ path: url.pathname, form });
    return handle({ method: r.method, path: url.pathname, form });
  });
  await listening.promise;
  const scheme = opts.tls ? "https" : "http";
  return {
    url: `${scheme}://127.0.0.1:${server.addr.port}`,
    requests,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function xmlError(status: number, code: string): Response {
  return new Response(
    `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${code}</Message></Error></ErrorResponse>`,
    { status, headers: { "content-type": "text/xml" } },
  );
}

function oauthError(status: number, error: string): Response {
  return Response.json({ error, error_description: error }, { status });
}

function b64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}
