/**
 * The imperative part of a user's password: making the login roles match the spec, and the
 * three credential steps (import a password from an old Secret, record a new one as pending,
 * set and verify the pending one and commit it). The credentials record is always written
 * before PostgreSQL sees a new verifier; see docs/design/rotation.md.
 */
import type { DatabaseUser } from "../../crds/database_user.ts";
import type { OwnerReference } from "../runtime/types.ts";
import { observeServer } from "../postgres/catalog.ts";
import type { PgExecutor } from "../postgres/execute.ts";
import { mapPgError } from "../postgres/execute.ts";
import type { AdoptionConsent } from "../postgres/claims.ts";
import type { UserDatabase } from "../postgres/plan_user.ts";
import type { ServerPool } from "../postgres/pool.ts";
import { generatePassword, scramVerifier } from "../postgres/scram.ts";
import type { TablePrivilege } from "../postgres/statements.ts";
import { parseGoDuration } from "../../lib/duration.ts";
import { RetryableError } from "../../lib/errors.ts";
import { type KubeClient, SecretResource } from "../runtime/kube.ts";
import { ADOPT_ANNOTATION, authenticationOf, type DatabaseTarget, isIamUser } from "./spec.ts";
import { loginRoles, type PasswordReason } from "./rotation.ts";
import type { Secret } from "./secret.ts";
import { decodeData, readCredentials } from "./secret.ts";
import { commitPending, type CredentialsState, type Pending, stateSecret } from "./state.ts";
import { kubeTime } from "../../lib/time.ts";

/** What the credential steps of one reconcile work with. */
export interface CredentialsContext {
  user: DatabaseUser;
  ownerRef: OwnerReference;
  username: string;
  targets: readonly DatabaseTarget[];
  client: KubeClient;
  pool: ServerPool;
  exec: PgExecutor;
  now: () => number;
  /** Collects the statements ensureRoles ran (redacted), for the drift Event. */
  ran?: string[];
  /** The reconcile's: every API call and statement of the steps stops with it. */
  signal: AbortSignal;
  /** The DBCluster's answer to adoption, read when the user asks for it. */
  consent?: AdoptionConsent;
  /** The DBCluster's name, spec.grantableRoles (memberOf) and spec.allowedRoleSettings. */
  cluster?: {
    name: string;
    grantableRoles: readonly string[];
    allowedRoleSettings?: readonly string[];
  };
}

const alternating = (u: DatabaseUser) => u.spec.rotation?.strategy === "Alternating";

/** The login roles to keep: the strategy's, plus whichever the record names. */
export function rolesOf(c: CredentialsContext, state: CredentialsState): string[] {
  // An IAM user is one role, spec.username; Alternating's second role is a password matter.
  if (isIamUser(c.user)) return [c.username];
  const roles = new Set(loginRoles(c.username, alternating(c.user)));
  if (state.role) roles.add(state.role);
  if (state.pending) roles.add(state.pending.role);
  return [...roles];
}

function databasesOf(c: CredentialsContext): UserDatabase[] {
  // additionalGrants name tables of the first (primary) database.
  return c.targets.map((t, i) => ({
    name: t.pgName,
    level: t.level,
    ...(t.schemas ? { schemas: t.schemas } : {}),
    ...(t.ownedSchemas ? { ownedSchemas: t.ownedSchemas } : {}),
    ...(t.settings ? { settings: t.settings } : {}),
    ...(i === 0 && c.user.spec.additionalGrants
      ? {
        additionalGrants: c.user.spec.additionalGrants.map((g) => ({
          tables: g.tables,
          privileges: g.privileges as TablePrivilege[],
        })),
      }
      : {}),
  }));
}

/**
 * Makes every login role match the spec. `set` gives a role a password now; a role that does not
 * exist is created with the recorded password (active role) or an unknown random one (the idle
 * role of Alternating, which gets a known one at its first rotation).
 */
export async function ensureRoles(
  c: CredentialsContext,
  state: CredentialsState,
  set?: { role: string; password: string; at: number } | { clearPassword: boolean },
): Promise<number> {
  const auth = authenticationOf(c.user);
  const roles = rolesOf(c, state);
  const snap = await c.pool.run((sql) => observeServer(sql, { roles }), { signal: c.signal }).catch(
    (e) => {
      throw mapPgError(e, { server: c.pool.endpoint });
    },
  );
  const idle = c.user.spec.idleInTransactionTimeout;
  const memberOf = c.user.spec.memberOf;
  let changed = 0;
  for (const r of roles) {
    let password: string | undefined;
    if (auth !== "password") password = undefined;
    else if (set && "role" in set && set.role === r) password = set.password;
    else if (!snap.roles.has(r)) {
      password = r === state.role && state.password ? state.password : generatePassword(32);
    }
    const until = validUntilOf(c.user, {
      role: r,
      state,
      ...(set && "role" in set && set.role === r ? { set: set.at } : {}),
    });
    const res = await c.exec.ensureUser({
      username: r,
      marker: { namespace: c.user.metadata.namespace ?? "default", name: c.user.metadata.name },
      databases: databasesOf(c),
      login: true,
      connectionLimit: c.user.spec.connectionLimit,
      ...(idle ? { idleInTransactionTimeoutMs: parseGoDuration(idle) } : {}),
      ...(c.user.spec.settings ? { settings: c.user.spec.settings } : {}),
      extraSettings: {
        names: c.cluster?.allowedRoleSettings ?? [],
        cluster: c.cluster?.name ?? "",
      },
      ...(until === undefined ? {} : { validUntil: until }),
      ...(memberOf
        ? {
          memberOf: {
            roles: memberOf,
            grantable: c.cluster?.grantableRoles ?? [],
            cluster: c.cluster?.name ?? "",
          },
        }
        : {}),
      ...(password === undefined ? {} : { passwordVerifier: await scramVerifier(password) }),
      adopt: c.user.metadata.annotations?.[ADOPT_ANNOTATION] === "true",
      ...(c.consent ? { consent: c.consent } : {}),
      siblings: roles.filter((x) => x !== r),
      authentication: auth,
      ...(set && "clearPassword" in set ? { clearPassword: set.clearPassword } : {}),
    });
    changed += res.changed;
    c.ran?.push(...(res.statements ?? []));
  }
  return changed;
}

/**
 * The VALID UNTIL of login role `role`: validUntil.at as it is, or with afterPasswordChange the
 * time its password was set plus that: `set` when it is set now, the record's updatedAt for the
 * active role; undefined (left as it is) for an idle role of Alternating, which keeps the expiry
 * it got with its password.
 */
export function validUntilOf(
  user: DatabaseUser,
  o: { role: string; state: CredentialsState; set?: number },
): string | undefined {
  const v = user.spec.validUntil;
  if (!v) return undefined;
  if (v.at !== undefined) return v.at === "infinity" ? "infinity" : isoOf(Date.parse(v.at));
  const since = o.set ??
    (o.role === o.state.role && o.state.updatedAt ? Date.parse(o.state.updatedAt) : undefined);
  if (since === undefined || v.afterPasswordChange === undefined) return undefined;
  return isoOf(since + parseGoDuration(v.afterPasswordChange));
}

const isoOf = (ms: number) => new Date(ms).toISOString();

/** Writes the record (create or replace guarded by resourceVersion); returns the stored Secret. */
export async function writeState(
  c: CredentialsContext,
  state: CredentialsState,
  existing: Secret | undefined,
): Promise<Secret> {
  const s = stateSecret(state, { owner: c.user, ownerRef: c.ownerRef, existing });
  const ns = c.user.metadata.namespace;
  return existing
    ? await c.client.replace<Secret>(SecretResource, {
      signal: c.signal,
      namespace: ns,
      name: s.metadata.name,
      body: s,
    })
    : await c.client.create<Secret>(SecretResource, { signal: c.signal, namespace: ns, body: s });
}

/** Records a new password as pending. Nothing reaches PostgreSQL before this write returns. */
export function beginPending(
  c: CredentialsContext,
  state: CredentialsState,
  o: { role: string; reason: PasswordReason; request?: string },
): CredentialsState {
  const pending: Pending = {
    role: o.role,
    password: generatePassword(c.user.spec.password.length),
    reason: o.reason,
    ...(o.request === undefined ? {} : { request: o.request }),
  };
  return { ...state, pending };
}

/**
 * Sets the pending password on its role (again, if an earlier attempt got that far), verifies it
 * by logging in, and returns the committed record. Throws PasswordVerificationFailed if the login
 * fails, keeping the pending password for the retry.
 */
export async function applyPending(
  c: CredentialsContext,
  state: CredentialsState,
): Promise<CredentialsState> {
  const p = state.pending!;
  // Whole seconds, as the record stores them: the VALID UNTIL set now is the one later passes
  // compute from the record.
  const at = Math.floor(c.now() / 1000) * 1000;
  await ensureRoles(c, state, { role: p.role, password: p.password, at });
  const ok = await c.exec.verifyLogin(
    { user: p.role, password: p.password },
    { database: c.targets[0]!.pgName },
  );
  if (!ok) {
    throw new RetryableError(
      "PasswordVerificationFailed",
      `Cannot verify the new password of role ${JSON.stringify(p.role)}: login refused`,
    );
  }
  return commitPending(state, kubeTime(at));
}

/**
 * A record rebuilt from an application Secret this user wrote earlier (the record was deleted,
 * or the Secret comes from the Go dbtether, which wrote `user` instead of `username`), if its
 * password logs in. Undefined otherwise.
 */
export async function importFromSecret(
  c: CredentialsContext,
  secret: Secret,
  o: { lastRequest: string | undefined; updatedAt: string | undefined },
): Promise<CredentialsState | undefined> {
  const creds = readCredentials(decodeData(secret), c.user.spec.secret);
  const roles = loginRoles(c.username, true);
  if (!creds.password || !creds.username || !roles.includes(creds.username)) return undefined;
  const ok = await c.exec.verifyLogin(
    { user: creds.username, password: creds.password },
    { database: c.targets[0]!.pgName },
  );
  if (!ok) return undefined;
  return {
    role: creds.username,
    password: creds.password,
    updatedAt: o.updatedAt ?? kubeTime(c.now()),
    ...(o.lastRequest === undefined ? {} : { lastRequest: o.lastRequest }),
    secrets: [],
  };
}
