/**
 * The credentials Secrets of a DatabaseUser, pure: names, key layouts per template, URI/DSN
 * escaping, reading credentials back (old Secrets carry `user` instead of `username`), and the
 * decision what to do with a Secret of the wanted name that already exists.
 */
import type { DatabaseUser, DatabaseUserSpec } from "../../crds/database_user.ts";
import {
  MANAGED_BY_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
} from "../services/secret_owner.ts";
import type { KubeObject, OwnerReference } from "../../crds/kind.ts";

/** A Secret as read from or written to the API. */
export type Secret = KubeObject<undefined, undefined> & {
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
};

export { MANAGED_BY_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE };
export const DATABASE_ANNOTATION = "dbtether.io/database";

type SecretSpec = DatabaseUserSpec["secret"];
type Template = SecretSpec["template"];
type KeyOverrides = NonNullable<SecretSpec["keys"]>;

/** What a Secret describes: where to connect and as whom. */
export interface Connection {
  host: string;
  port: number;
  /** The PostgreSQL database name. */
  database: string;
  /** All PostgreSQL database names of the user, for the raw template's `databases` key. */
  databases: readonly string[];
  username: string;
  /** Absent for an IAM user: it logs in with a token the app requests itself. */
  password?: string;
  /** The DBCluster's readerEndpoint (port defaulted), when it has one. */
  reader?: { host: string; port: number };
  /** awsIam: the region the app signs its RDS token for. */
  region?: string;
}

export interface KeyNames {
  host: string;
  port: string;
  database: string;
  username: string;
  password: string;
}

const RAW: KeyNames = {
  host: "host",
  port: "port",
  database: "database",
  username: "username",
  password: "password",
};

function prefixed(p: string, db: string): KeyNames {
  return {
    host: `${p}_HOST`,
    port: `${p}_PORT`,
    database: `${p}_${db}`,
    username: `${p}_USER`,
    password: `${p}_PASSWORD`,
  };
}

/** Key names of a template; undefined for `dsn`, which has a single key. */
export function keyNames(template: Template, keys?: KeyOverrides): KeyNames | undefined {
  switch (template) {
    case "raw":
      return RAW;
    case "DB":
      return prefixed("DB", "NAME");
    case "DATABASE":
      return prefixed("DATABASE", "NAME");
    case "POSTGRES":
      return prefixed("POSTGRES", "DATABASE");
    case "dsn":
      return undefined;
    case "custom":
      return {
        host: keys?.host ?? RAW.host,
        port: keys?.port ?? RAW.port,
        database: keys?.database ?? RAW.database,
        username: keys?.username ?? RAW.username,
        password: keys?.password ?? RAW.password,
      };
  }
}

/** `host` as it goes into a URI: IPv6 literals in brackets. */
function uriHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** A libpq connection URI with every component percent-encoded. */
export function connectionUri(c: Connection, scheme: "postgresql" | "postgres"): string {
  const enc = encodeURIComponent;
  const password = c.password === undefined ? "" : `:${enc(c.password)}`;
  return `${scheme}://${enc(c.username)}${password}@${uriHost(c.host)}:${c.port}/${
    enc(c.database)
  }`;
}

/** The key of an awsIam user's region: `region` (raw, custom), `<PREFIX>_REGION`. */
function regionKey(template: Template): string {
  return template === "raw" || template === "custom" ? "region" : `${template}_REGION`;
}

/** The reader keys of a template: `readerHost` (raw, custom), `<PREFIX>_READER_HOST`. */
export function readerKeyNames(template: Template): { host: string; port: string } | undefined {
  switch (template) {
    case "raw":
    case "custom":
      return { host: "readerHost", port: "readerPort" };
    case "DB":
    case "DATABASE":
    case "POSTGRES":
      return { host: `${template}_READER_HOST`, port: `${template}_READER_PORT` };
    case "dsn":
      return undefined;
  }
}

/**
 * The Secret's data (plain strings) for a template. With a reader endpoint, also its keys
 * (`uri_ro` beside raw's `uri`, `dsn_ro` beside `dsn`); an awsIam user's region (`region` beside
 * `dsn`); without those, exactly the keys of old.
 */
export function renderData(c: Connection, secret: SecretSpec): Record<string, string> {
  const names = keyNames(secret.template, secret.keys);
  const reader = c.reader && { ...c, host: c.reader.host, port: c.reader.port };
  if (!names) {
    // A libpq URI cannot carry the region (an unknown parameter fails the connection), so an
    // awsIam user's goes beside it, as dsn_ro does.
    return {
      dsn: connectionUri(c, "postgres"),
      ...(reader ? { dsn_ro: connectionUri(reader, "postgres") } : {}),
      ...(c.region !== undefined ? { region: c.region } : {}),
    };
  }
  const out: Record<string, string> = {
    [names.host]: c.host,
    [names.port]: String(c.port),
    [names.database]: c.database,
    [names.username]: c.username,
  };
  if (c.password !== undefined) out[names.password] = c.password;
  if (c.region !== undefined) out[regionKey(secret.template)] = c.region;
  if (secret.template === "raw") {
    out.uri = connectionUri(c, "postgresql");
    if (c.databases.length > 1) out.databases = c.databases.join(",");
  }
  const rk = readerKeyNames(secret.template);
  if (reader && rk) {
    out[rk.host] = reader.host;
    out[rk.port] = String(reader.port);
    if (secret.template === "raw") out.uri_ro = connectionUri(reader, "postgresql");
  }
  return out;
}

/** Username and password found in a Secret's data under a template (or a legacy layout). */
export function readCredentials(
  data: Record<string, string>,
  secret: SecretSpec,
): { username?: string; password?: string } {
  const names = keyNames(secret.template, secret.keys);
  if (!names) {
    const dsn = data.dsn;
    if (dsn === undefined) return {};
    try {
      const u = new URL(dsn);
      return {
        username: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
      };
    } catch {
      return {};
    }
  }
  const username = data[names.username] ?? data.username ?? data.user;
  const password = data[names.password] ?? data.password;
  return {
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
  };
}

/** The primary Secret's name: `secret.name`, else `<name>-credentials`. */
export function primarySecretName(user: DatabaseUser): string {
  return user.spec.secret.name ?? `${user.metadata.name}-credentials`;
}

/** A per-database Secret's name: `<name>-<Database resource name>-credentials`. */
export function perDatabaseSecretName(user: DatabaseUser, databaseResource: string): string {
  return `${user.metadata.name}-${databaseResource}-credentials`;
}

/** Whether an existing Secret belongs to `owner`: its controller reference, or legacy markers. */
export function isOurs(secret: Secret, owner: DatabaseUser): boolean {
  const refs = secret.metadata.ownerReferences ?? [];
  if (refs.some((r) => r.uid === owner.metadata.uid)) return true;
  // Secrets of the Go dbtether that lost their ownerReference still carry these markers.
  return refs.length === 0 &&
    secret.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE &&
    secret.metadata.annotations?.[MANAGED_BY_ANNOTATION] === owner.metadata.name;
}

/** Why a Secret cannot be written, declared once. */
export type SecretConflictReason = "SecretConflict" | "SecretOwnedByOther";

/** What to do about the Secret named for a user. */
export type SecretDecision =
  | { kind: "create" }
  | { kind: "update"; keepForeignKeys: boolean }
  | { kind: "conflict"; reason: SecretConflictReason; message: string };

/**
 * Decides between create, update (ours or taken over) and a conflict, by `onConflict`.
 * `claimedBy` names whom else the existing Secret belongs to (secret_owner.ts): such a Secret
 * is never taken over, whatever onConflict says.
 */
export function decideSecret(
  existing: Secret | undefined,
  owner: DatabaseUser,
  o: { claimedBy?: string | undefined } = {},
): SecretDecision {
  const onConflict = owner.spec.secret.onConflict;
  if (!existing) return { kind: "create" };
  if (o.claimedBy !== undefined) {
    return {
      kind: "conflict",
      reason: "SecretOwnedByOther",
      message: `Cannot write Secret ${JSON.stringify(existing.metadata.name)}: it belongs to ` +
        `${o.claimedBy}, and is never taken over whatever spec.secret.onConflict says ` +
        `(choose another spec.secret.name)`,
    };
  }
  if (isOurs(existing, owner)) return { kind: "update", keepForeignKeys: onConflict === "Merge" };
  if (onConflict === "Adopt") return { kind: "update", keepForeignKeys: false };
  if (onConflict === "Merge") return { kind: "update", keepForeignKeys: true };
  return {
    kind: "conflict",
    reason: "SecretConflict",
    message: `Cannot write Secret ${JSON.stringify(existing.metadata.name)}: it exists and ` +
      `does not belong to this DatabaseUser (set spec.secret.onConflict to Adopt or Merge to ` +
      `take it over, or choose another spec.secret.name)`,
  };
}

/** The Secret to write, or undefined when `existing` already says exactly that. */
export function desiredSecret(
  o: {
    name: string;
    owner: DatabaseUser;
    ownerRef: OwnerReference;
    databaseResource: string;
    data: Record<string, string>;
    existing: Secret | undefined;
    keepForeignKeys: boolean;
  },
): Secret | undefined {
  const current = o.existing ? decodeData(o.existing) : {};
  const data = o.keepForeignKeys ? { ...current, ...o.data } : o.data;
  const meta = o.existing?.metadata;
  const labels = { ...(meta?.labels ?? {}), [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
  const annotations = {
    ...(meta?.annotations ?? {}),
    [MANAGED_BY_ANNOTATION]: o.owner.metadata.name,
    [DATABASE_ANNOTATION]: o.databaseResource,
  };
  const otherRefs = (meta?.ownerReferences ?? []).filter((r) =>
    r.uid !== o.ownerRef.uid && !r.controller
  );
  const ownerReferences = [...otherRefs, o.ownerRef];
  if (
    o.existing && sameRecord(current, data) && sameRecord(meta?.labels ?? {}, labels) &&
    sameRecord(meta?.annotations ?? {}, annotations) &&
    JSON.stringify(meta?.ownerReferences ?? []) === JSON.stringify(ownerReferences)
  ) {
    return undefined;
  }
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: o.name,
      ...(o.owner.metadata.namespace ? { namespace: o.owner.metadata.namespace } : {}),
      ...(meta?.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
      labels,
      annotations,
      ownerReferences,
    },
    spec: undefined,
    type: o.existing?.type ?? "Opaque",
    data: encodeData(data),
  };
}

function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => b[k] === a[k]);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** base64 of UTF-8, as Secret data holds it. */
export function encodeData(data: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    let bin = "";
    for (const b of encoder.encode(v)) bin += String.fromCharCode(b);
    out[k] = btoa(bin);
  }
  return out;
}

/** A Secret's data as strings. */
export function decodeData(s: Secret): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.data ?? {})) {
    out[k] = decoder.decode(Uint8Array.from(atob(v), (c) => c.charCodeAt(0)));
  }
  return { ...out, ...(s.stringData ?? {}) };
}
