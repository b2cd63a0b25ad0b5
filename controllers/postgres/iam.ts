/**
 * Passwords that are tokens: the operator's own login to a server by cloud IAM (a DBCluster's
 * spec.authentication). A {@link TokenSource} hands each new connection a token that is still
 * valid; the pool calls it for every connection it opens (postgres.js accepts the password as
 * a function), so a token is never reused past its refresh time and never stored in a
 * ServerConfig, a fingerprint, a log line or an error.
 *
 * AWS: an RDS IAM token is a SigV4-presigned `connect` request for the host, port and user,
 * valid 15 minutes. It is signed at the start of each refresh period (default 10 minutes), so
 * every connection opened within one period gets the same token and any connection gets a
 * token with at least 15 − period minutes left. The signing is what `@aws-sdk/rds-signer`'s
 * Signer does, with the signing time given instead of read from the wall clock (the Signer
 * offers no such option); iam_test.ts checks that both give the same token.
 *
 * Azure: an Entra ID access token for the Azure Database for PostgreSQL scope, from
 * `@azure/identity`'s default credential chain (workload identity in a pod), renewed five
 * minutes before it expires.
 */
import { createHash, createHmac } from "node:crypto";

/** Where a connection's password comes from when it is a token. */
export interface TokenSource {
  /** Identifies the source's settings (never the token): pools are rebuilt when it changes. */
  readonly id: string;
  /** A token valid for a new connection now. Errors never contain a token. */
  token(): Promise<string>;
}

/** AWS credentials, as the SDK's credential providers return them. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

/** What an RDS IAM token is signed for. */
export interface RdsTokenRequest {
  host: string;
  port: number;
  user: string;
  region: string;
}

/** How long RDS accepts a token after it was signed. */
export const RDS_TOKEN_LIFETIME_SECONDS = 900;
/** Default time after which a new token is signed. */
export const DEFAULT_TOKEN_REFRESH_MS = 10 * 60_000;
/** Scope of Azure Database for PostgreSQL tokens. */
export const AZURE_POSTGRES_SCOPE = "https://ossrdbms-aad.database.windows.net/.default";

/** SHA-256 and HMAC-SHA-256 in the shape the SigV4 signer expects (node:crypto inside). */
type Data = string | ArrayBuffer | ArrayBufferView;

function bytes(d: Data): Uint8Array | string {
  if (typeof d === "string") return d;
  if (d instanceof ArrayBuffer) return new Uint8Array(d);
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

class Sha256 {
  #hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  readonly #secret: Uint8Array | string | undefined;

  constructor(secret?: Data) {
    this.#secret = secret === undefined ? undefined : bytes(secret);
    this.#hash = this.#fresh();
  }

  #fresh() {
    return this.#secret === undefined ? createHash("sha256") : createHmac("sha256", this.#secret);
  }

  update(data: Data): void {
    this.#hash.update(bytes(data));
  }

  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }

  reset(): void {
    this.#hash = this.#fresh();
  }
}

/** Percent-encoding of a query component as SigV4 and the SDK's URL formatter do it. */
function encode(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * The RDS IAM token for `req`, signed with `credentials` at `signingDate`: deterministic, so a
 * test that knows both computes the token the operator sends.
 */
export async function rdsAuthToken(
  req: RdsTokenRequest,
  credentials: AwsCredentials,
  signingDate: Date,
): Promise<string> {
  const { SignatureV4 } = await import("@smithy/signature-v4");
  const signer = new SignatureV4({
    service: "rds-db",
    region: req.region,
    credentials,
    sha256: Sha256,
  });
  const presigned = await signer.presign({
    method: "GET",
    protocol: "https:",
    hostname: req.host,
    port: req.port,
    path: "/",
    query: { Action: "connect", DBUser: req.user },
    headers: { host: `${req.host}:${req.port}` },
  }, { expiresIn: RDS_TOKEN_LIFETIME_SECONDS, signingDate });
  const query = Object.keys(presigned.query ?? {}).sort().map((k) => {
    const v = presigned.query?.[k];
    return `${encode(k)}=${encode(typeof v === "string" ? v : String(v))}`;
  }).join("&");
  return `${req.host}:${req.port}/?${query}`;
}

/** Start of the refresh period that `nowMs` falls in (whole seconds, as SigV4 signs). */
export function periodStart(nowMs: number, periodMs: number): Date {
  const start = Math.floor(nowMs / periodMs) * periodMs;
  return new Date(Math.floor(start / 1000) * 1000);
}

/** Checks a refresh period against the RDS token lifetime; returns an error message or undefined. */
export function refreshPeriodProblem(periodMs: number): string | undefined {
  if (!(periodMs >= 1000)) return "must be at least 1s";
  // A token signed at the start of the period must still be valid at its end, with a minute
  // to spare for the connection that asked for it.
  if (periodMs > (RDS_TOKEN_LIFETIME_SECONDS - 60) * 1000) return "must be at most 14m";
  return undefined;
}

/** Error of a token source: says what failed, never carries a token. */
export class TokenError extends Error {
  override name = "TokenError";
}

/** Message of an error thrown by a cloud SDK, on one line and bounded. */
function sdkMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split("\n")[0]!.slice(0, 300);
}

/** Options of {@link awsIamTokenSource}. */
export interface AwsTokenOptions extends RdsTokenRequest {
  refreshMs?: number;
  /** Default: the AWS SDK's default chain (environment, web identity (IRSA), ECS, IMDS). */
  credentials?: () => Promise<AwsCredentials>;
  now?: () => number;
}

/** The AWS SDK's default credential chain, loaded on first use. */
async function defaultAwsCredentials(): Promise<() => Promise<AwsCredentials>> {
  const { fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
  return fromNodeProviderChain();
}

/** AWS RDS IAM tokens for one host, port, user and region, one per refresh period. */
export function awsIamTokenSource(o: AwsTokenOptions): TokenSource {
  const refreshMs = o.refreshMs ?? DEFAULT_TOKEN_REFRESH_MS;
  const now = o.now ?? Date.now;
  let provider = o.credentials;
  let cached: { at: number; token: string } | undefined;
  return {
    id: JSON.stringify(["awsIam", o.host, o.port, o.user, o.region, refreshMs]),
    async token() {
      const at = periodStart(now(), refreshMs);
      if (cached?.at === at.getTime()) return cached.token;
      let creds: AwsCredentials;
      try {
        const chain = provider ?? (provider = await defaultAwsCredentials());
        creds = await chain();
      } catch (e) {
        throw new TokenError(`Cannot get AWS credentials for an RDS IAM token: ${sdkMessage(e)}`);
      }
      const token = await rdsAuthToken(o, creds, at);
      cached = { at: at.getTime(), token };
      return token;
    },
  };
}

/** An access token as `@azure/identity` returns it. */
export interface AzureAccessToken {
  token: string;
  expiresOnTimestamp: number;
}

/** Options of {@link azureEntraTokenSource}. */
export interface AzureTokenOptions {
  /** For the source's id only (which server and role it is for). */
  host: string;
  user: string;
  scope?: string;
  /** Default: `@azure/identity`'s DefaultAzureCredential (workload identity in a pod). */
  getToken?: (scope: string) => Promise<AzureAccessToken | null>;
  now?: () => number;
}

/** Renew an Entra token this long before it expires. */
const AZURE_RENEW_BEFORE_MS = 5 * 60_000;

/** Azure Entra ID tokens for Azure Database for PostgreSQL, renewed before they expire. */
export function azureEntraTokenSource(o: AzureTokenOptions): TokenSource {
  const scope = o.scope ?? AZURE_POSTGRES_SCOPE;
  const now = o.now ?? Date.now;
  let getToken = o.getToken;
  let cached: AzureAccessToken | undefined;
  return {
    id: JSON.stringify(["azureEntra", o.host, o.user, scope]),
    async token() {
      if (cached && cached.expiresOnTimestamp - AZURE_RENEW_BEFORE_MS > now()) {
        return cached.token;
      }
      let got: AzureAccessToken | null;
      try {
        if (!getToken) {
          const { DefaultAzureCredential } = await import("@azure/identity");
          const credential = new DefaultAzureCredential();
          getToken = (s) => credential.getToken(s);
        }
        got = await getToken(scope);
      } catch (e) {
        throw new TokenError(`Cannot get an Azure Entra ID token: ${sdkMessage(e)}`);
      }
      if (!got) throw new TokenError("Cannot get an Azure Entra ID token: none was returned");
      cached = got;
      return got.token;
    },
  };
}
