/**
 * Turns a DBCluster name into a ready connection: the admin credentials (from its Secret or
 * from the operator's environment), TLS settings and CA, the namespace allow-list check, and
 * the shared connection pool of that server. Every controller that sends SQL or runs pg_dump
 * goes through here, so credentials are read in one place and never logged.
 */
import type { DBCluster } from "../../crds/dbcluster.ts";
import type { KubeObject } from "../../crds/kind.ts";
import { RetryableError } from "../../lib/errors.ts";
import { type KubeClient, NamespaceResource } from "../runtime/kube.ts";
import type { InformerSet } from "../runtime/shared.ts";
import type { ServerConfig, ServerPool, SslMode } from "../postgres/pool.ts";
import type { PoolRegistry } from "../postgres/registry.ts";
import { awsIamTokenSource, azureEntraTokenSource, type TokenSource } from "../postgres/iam.ts";
import { namespaceAllowed, needsLabels } from "./namespaces.ts";
import { SecretReads } from "./secret_reads.ts";

type Secret = KubeObject<unknown, unknown> & {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
};
type Namespace = KubeObject<unknown, unknown>;

/** Why a DBCluster cannot be used (the reasons {@link ClusterResolver.resolve} throws). */
export const RESOLVER_REASONS = [
  "ClusterNotFound",
  "NamespaceNotAllowed",
  "CredentialsMissing",
  "CASecretMissing",
] as const;
/** A reason of {@link RESOLVER_REASONS}. */
export type ResolverReason = typeof RESOLVER_REASONS[number];

/** A DBCluster made usable: never log `server` (it holds the admin password). */
export interface ResolvedCluster {
  cluster: DBCluster;
  server: ServerConfig;
  pool: ServerPool;
  adminRole: string;
}

export interface ResolverOptions {
  client: KubeClient;
  /** The DBClusters: an informer's view, or (`dbtether plan`) a list read once. */
  clusters: Pick<InformerSet<DBCluster>, "get" | "list">;
  pools: PoolRegistry;
  /** The operator's environment, for spec.credentialsFromEnv. */
  env: Record<string, string | undefined>;
  /**
   * Metadata of the Secrets (a metadata-only informer): a credentials or CA Secret is read once
   * per resourceVersion it shows, not on every resolve. Without it, or for a Secret it does not
   * see, every resolve reads the Secret.
   */
  secrets?: InformerSet<KubeObject<unknown, unknown>>;
  /** The shared read cache over `secrets` (one is made when not given). */
  reads?: SecretReads;
  /** spec.authentication: a new token is signed this often (awsIam); default 10 minutes. */
  iamTokenRefreshMs?: number;
}

const decoder = new TextDecoder();

/** The pool owner of a DBCluster (cluster-scoped names cannot contain "/"). */
export function clusterPoolOwner(name: string): string {
  return `DBCluster/${name}`;
}

/** Decodes a Secret's base64 data into strings. */
export function secretData(s: Secret): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.data ?? {})) {
    out[k] = decoder.decode(Uint8Array.from(atob(v), (c) => c.charCodeAt(0)));
  }
  return { ...out, ...(s.stringData ?? {}) };
}

export class ClusterResolver {
  /** Secrets read through the API once per resourceVersion. */
  readonly #reads: SecretReads;
  /** Token sources of DBClusters with spec.authentication, by DBCluster name. */
  readonly #tokens = new Map<string, TokenSource>();

  constructor(private readonly o: ResolverOptions) {
    this.#reads = o.reads ?? new SecretReads({ client: o.client, informer: o.secrets });
  }

  /** The DBCluster object from the cache, or undefined. */
  get(name: string): DBCluster | undefined {
    return this.o.clusters.get(name);
  }

  /**
   * Resolves `name` for a user in `namespace` (omit for cluster-level work). Throws
   * RetryableError with reason ClusterNotFound, NamespaceNotAllowed, CredentialsMissing or
   * CASecretMissing; no SQL is sent before all checks passed. `signal` cancels the API reads.
   */
  async resolve(
    name: string,
    opts: { namespace?: string; signal?: AbortSignal } = {},
  ): Promise<ResolvedCluster> {
    const call = opts.signal ? { signal: opts.signal } : {};
    const cluster = this.o.clusters.get(name);
    if (!cluster) {
      throw new RetryableError<ResolverReason>(
        "ClusterNotFound",
        `DBCluster "${name}" does not exist: create it or fix clusterRef.name`,
      );
    }
    if (opts.namespace !== undefined) await this.checkNamespace(cluster, opts.namespace, call);
    const spec = cluster.spec;
    const iam = this.#tokenSource(cluster);
    const { username, password } = iam
      ? { username: iam.user, password: "" }
      : await this.#credentials(cluster, call);
    const ca = await this.#ca(cluster, call);
    const server: ServerConfig = {
      host: spec.endpoint,
      port: spec.port,
      user: username,
      password,
      ...(iam ? { passwordSource: iam.source } : {}),
      sslMode: (spec.sslMode ?? "require") as SslMode,
      maxConnections: spec.maxConnections,
      ...(ca ? { ca } : {}),
    };
    // Each DBCluster has its own pool (pool.ts says why): settings of another DBCluster on the
    // same server never rebuild it.
    const pool = await this.o.pools.get(server, { owner: clusterPoolOwner(name) });
    return { cluster, server, pool, adminRole: username };
  }

  /** Throws NamespaceNotAllowed unless the DBCluster's allowedNamespaces admits `namespace`. */
  async checkNamespace(
    cluster: DBCluster,
    namespace: string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const allowed = cluster.spec.allowedNamespaces;
    let labels: Record<string, string> = {};
    if (needsLabels(allowed)) {
      const ns = await this.o.client.find<Namespace>(NamespaceResource, {
        name: namespace,
        ...opts,
      });
      labels = ns?.metadata.labels ?? {};
    }
    if (!namespaceAllowed(allowed, namespace, labels)) {
      throw new RetryableError<ResolverReason>(
        "NamespaceNotAllowed",
        `Namespace "${namespace}" may not use DBCluster "${cluster.metadata.name}": ` +
          "it is not in the DBCluster's spec.allowedNamespaces",
      );
    }
  }

  /**
   * Calls `listener` with a DBCluster's name when its server stops answering the connects of
   * any controller, or answers again after that (registry.ts): the DBCluster then checks at once
   * instead of at its next health check.
   */
  onReachability(listener: (cluster: string, reachable: boolean) => void): void {
    const prefix = clusterPoolOwner("");
    this.o.pools.onReachability((owner, reachable) => {
      if (owner.startsWith(prefix)) listener(owner.slice(prefix.length), reachable);
    });
  }

  /** Names of DBClusters that read the Secret `namespace/name` (credentials or CA). */
  clustersUsingSecret(namespace: string, name: string): string[] {
    return this.o.clusters.list().filter((c) => {
      const cred = c.spec.credentialsSecretRef;
      const ca = c.spec.caSecretRef;
      return (cred?.namespace === namespace && cred.name === name) ||
        (ca?.namespace === namespace && ca.name === name);
    }).map((c) => c.metadata.name);
  }

  /**
   * The token source of a DBCluster with spec.authentication, kept across resolves (its token
   * cache with it) while the settings stay the same.
   */
  #tokenSource(cluster: DBCluster): { user: string; source: TokenSource } | undefined {
    const auth = cluster.spec.authentication;
    const name = cluster.metadata.name;
    if (!auth) {
      this.#tokens.delete(name);
      return undefined;
    }
    const base = { host: cluster.spec.endpoint, user: auth.username };
    const source = auth.type === "awsIam"
      ? awsIamTokenSource({
        ...base,
        port: cluster.spec.port,
        // CEL requires the region for awsIam; "" only if the schema was bypassed.
        region: auth.region ?? "",
        ...(this.o.iamTokenRefreshMs ? { refreshMs: this.o.iamTokenRefreshMs } : {}),
      })
      : azureEntraTokenSource({ ...base, ...(auth.scope ? { scope: auth.scope } : {}) });
    const have = this.#tokens.get(name);
    if (have?.id === source.id) return { user: auth.username, source: have };
    this.#tokens.set(name, source);
    return { user: auth.username, source };
  }

  async #credentials(
    cluster: DBCluster,
    call: { signal?: AbortSignal },
  ): Promise<{ username: string; password: string }> {
    const name = cluster.metadata.name;
    const fromEnv = cluster.spec.credentialsFromEnv;
    if (fromEnv) {
      const username = this.o.env[fromEnv.username];
      const password = this.o.env[fromEnv.password];
      if (!username || !password) {
        throw new RetryableError<ResolverReason>(
          "CredentialsMissing",
          `Cannot read the admin credentials of DBCluster "${name}": environment variable ` +
            `${!username ? fromEnv.username : fromEnv.password} of the operator is not set`,
        );
      }
      return { username, password };
    }
    const ref = cluster.spec.credentialsSecretRef;
    if (!ref) {
      throw new RetryableError<ResolverReason>(
        "CredentialsMissing",
        `DBCluster "${name}" sets neither credentialsSecretRef nor credentialsFromEnv`,
      );
    }
    const secret = await this.#secret({ namespace: ref.namespace, name: ref.name, ...call });
    if (!secret) {
      throw new RetryableError<ResolverReason>(
        "CredentialsMissing",
        `Cannot read the admin credentials of DBCluster "${name}": Secret ${ref.namespace}/${ref.name} does not exist`,
      );
    }
    const data = secretData(secret);
    const username = data.username ?? data.user;
    const password = data.password;
    if (!username || !password) {
      throw new RetryableError<ResolverReason>(
        "CredentialsMissing",
        `Cannot read the admin credentials of DBCluster "${name}": Secret ${ref.namespace}/${ref.name} ` +
          `has no "${!username ? "username" : "password"}" key`,
      );
    }
    return { username, password };
  }

  async #ca(cluster: DBCluster, call: { signal?: AbortSignal }): Promise<string | undefined> {
    const ref = cluster.spec.caSecretRef;
    if (!ref) return undefined;
    const secret = await this.#secret({ namespace: ref.namespace, name: ref.name, ...call });
    const key = ref.key ?? "ca.crt";
    const pem = secret ? secretData(secret)[key] : undefined;
    if (!pem) {
      throw new RetryableError<ResolverReason>(
        "CASecretMissing",
        `Cannot read the CA of DBCluster "${cluster.metadata.name}": Secret ${ref.namespace}/${ref.name} ` +
          (secret ? `has no "${key}" key` : "does not exist"),
      );
    }
    return pem;
  }

  #secret(o: { namespace: string; name: string; signal?: AbortSignal }) {
    return this.#reads.find<Secret>(o);
  }
}

/**
 * A server from the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE), as
 * pg-db-operator used. Throws an Error naming the missing variables.
 */
export function serverFromLibpqEnv(env: Record<string, string | undefined>): ServerConfig {
  const missing = ["PGHOST", "PGUSER", "PGPASSWORD"].filter((k) => !env[k]);
  if (missing.length) {
    throw new Error(`Cannot connect through the libpq environment: ${missing.join(", ")} not set`);
  }
  const port = Number(env.PGPORT ?? "5432");
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`Invalid PGPORT "${env.PGPORT}"`);
  }
  const mode = env.PGSSLMODE ?? "prefer";
  // libpq's "allow" tries plaintext first; the nearest mode we offer is "prefer".
  const sslMode: SslMode = mode === "allow" ? "prefer" : mode as SslMode;
  if (!["disable", "prefer", "require", "verify-ca", "verify-full"].includes(sslMode)) {
    throw new Error(
      `Invalid PGSSLMODE "${mode}": use disable, allow, prefer, require, verify-ca or verify-full`,
    );
  }
  return {
    host: env.PGHOST!,
    port,
    user: env.PGUSER!,
    password: env.PGPASSWORD!,
    sslMode,
    ...(env.PGSSLROOTCERT_PEM ? { ca: env.PGSSLROOTCERT_PEM } : {}),
  };
}
