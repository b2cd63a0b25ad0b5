/**
 * The credentials record of a DatabaseUser: a Secret owned by the DatabaseUser, separate from the
 * Secrets applications read, that holds the password the active role has now and, during a
 * rotation, the password about to be set. It is written *before* any password reaches
 * PostgreSQL, so a crash at any point leaves a password that works or one that can be set again
 * (docs/design/rotation.md). Pure: parsing and building only.
 */
import type { DatabaseUser } from "../../crds/database_user.ts";
import type { OwnerReference } from "../../crds/kind.ts";
import { createHash } from "node:crypto";
import type { PasswordReason } from "./rotation.ts";
import {
  decodeData,
  encodeData,
  MANAGED_BY_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type Secret,
} from "./secret.ts";
import { STATE_LABEL } from "../services/secret_owner.ts";

const A = "dbtether.io/";
const UPDATED_AT = `${A}password-updated-at`;
const LAST_REQUEST = `${A}last-rotate-request`;
const PENDING_REQUEST = `${A}pending-rotate-request`;
const PENDING_REASON = `${A}pending-reason`;
const SECRETS = `${A}secrets`;
export { STATE_LABEL };

/** A password about to be set on `role`. */
export interface Pending {
  role: string;
  password: string;
  reason: PasswordReason;
  /** The dbtether.io/rotate value this rotation answers. */
  request?: string;
}

/** What the record says. */
export interface CredentialsState {
  /** The role the application Secrets name, and its password. */
  role?: string;
  password?: string;
  updatedAt?: string;
  lastRequest?: string;
  /** Application Secrets written with the current password. */
  secrets: string[];
  pending?: Pending;
}

/** `dbtether-<name>-state`, shortened with a hash when it would exceed 253 characters. */
export function stateSecretName(user: DatabaseUser): string {
  const name = `dbtether-${user.metadata.name}-state`;
  if (name.length <= 253) return name;
  const hash = createHash("sha256").update(user.metadata.name).digest("hex").slice(0, 10);
  return `dbtether-${user.metadata.name.slice(0, 253 - 26)}-${hash}-state`;
}

const REASONS: readonly PasswordReason[] = ["Created", "Scheduled", "Requested", "SecretDeleted"];

/** Reads the record; an absent Secret is an empty record. */
export function parseState(s: Secret | undefined): CredentialsState {
  if (!s) return { secrets: [] };
  const d = decodeData(s);
  const an = s.metadata.annotations ?? {};
  const out: CredentialsState = {
    secrets: (an[SECRETS] ?? "").split(",").filter(Boolean),
  };
  if (d.role && d.password) {
    out.role = d.role;
    out.password = d.password;
  }
  if (an[UPDATED_AT]) out.updatedAt = an[UPDATED_AT];
  if (an[LAST_REQUEST] !== undefined) out.lastRequest = an[LAST_REQUEST];
  if (d["pending-role"] && d["pending-password"]) {
    const reason = an[PENDING_REASON] as PasswordReason | undefined;
    out.pending = {
      role: d["pending-role"],
      password: d["pending-password"],
      reason: reason && REASONS.includes(reason) ? reason : "Scheduled",
      ...(an[PENDING_REQUEST] !== undefined ? { request: an[PENDING_REQUEST] } : {}),
    };
  }
  return out;
}

/** The record as a Secret (with `resourceVersion` of `existing` so a concurrent write conflicts). */
export function stateSecret(
  state: CredentialsState,
  o: { owner: DatabaseUser; ownerRef: OwnerReference; existing: Secret | undefined },
): Secret {
  const data: Record<string, string> = {};
  const annotations: Record<string, string> = { [MANAGED_BY_ANNOTATION]: o.owner.metadata.name };
  if (state.role !== undefined && state.password !== undefined) {
    data.role = state.role;
    data.password = state.password;
  }
  if (state.updatedAt) annotations[UPDATED_AT] = state.updatedAt;
  if (state.lastRequest !== undefined) annotations[LAST_REQUEST] = state.lastRequest;
  if (state.secrets.length) annotations[SECRETS] = [...state.secrets].sort().join(",");
  if (state.pending) {
    data["pending-role"] = state.pending.role;
    data["pending-password"] = state.pending.password;
    annotations[PENDING_REASON] = state.pending.reason;
    if (state.pending.request !== undefined) annotations[PENDING_REQUEST] = state.pending.request;
  }
  const rv = o.existing?.metadata.resourceVersion;
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: stateSecretName(o.owner),
      ...(o.owner.metadata.namespace ? { namespace: o.owner.metadata.namespace } : {}),
      ...(rv ? { resourceVersion: rv } : {}),
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [STATE_LABEL]: "true" },
      annotations,
      ownerReferences: [o.ownerRef],
    },
    spec: undefined,
    type: "Opaque",
    data: encodeData(data),
  };
}

/** The record after a pending password was verified on its role. */
export function commitPending(state: CredentialsState, updatedAt: string): CredentialsState {
  const p = state.pending;
  if (!p) return state;
  return {
    role: p.role,
    password: p.password,
    updatedAt,
    ...(p.request !== undefined
      ? { lastRequest: p.request }
      : state.lastRequest !== undefined
      ? { lastRequest: state.lastRequest }
      : {}),
    // The application Secrets still hold the old password until they are rewritten.
    secrets: [],
  };
}
