/**
 * A DatabaseUser under `spec.managementPolicy: Observe`: the roles' converge step of Manage
 * (ensureRoles → PgExecutor.ensureUser) played by a dry-run executor, so the drift is what
 * Manage would send. No password is known or set: an existing role's password is never part
 * of the plan, and a missing role shows as the CREATE ROLE Manage would run (redacted). The
 * credentials record is only read (for the role names); no Secret is written.
 */
import type { DatabaseUser } from "../../crds/database_user.ts";
import { PgExecutor } from "../postgres/execute.ts";
import type { KubeClient } from "../runtime/kube.ts";
import { SecretResource } from "../runtime/kube.ts";
import type { ResolvedCluster } from "../services/resolver.ts";
import { type Drift, observeDrift } from "../services/drift.ts";
import { ensureRoles } from "./credentials.ts";
import { userContext } from "./observe.ts";
import type { Secret } from "./secret.ts";
import { ADOPT_ANNOTATION, type DatabaseTarget } from "./spec.ts";
import { parseState, stateSecretName } from "./state.ts";

/** Whether the user only observes. */
export function userObserves(u: DatabaseUser): boolean {
  return u.spec.managementPolicy === "Observe";
}

/** Adoption as granted, for the second look of {@link observeDrift}: nothing is sent anyway. */
function asAdopting(u: DatabaseUser): DatabaseUser {
  const annotations = { ...u.metadata.annotations, [ADOPT_ANNOTATION]: "true" };
  return { ...u, metadata: { ...u.metadata, annotations } };
}

/** The drift of `user`'s roles and grants against the server. */
export async function userDrift(
  user: DatabaseUser,
  o: {
    targets: DatabaseTarget[];
    resolved: ResolvedCluster;
    client: KubeClient;
    signal: AbortSignal;
  },
): Promise<Drift> {
  const { client, signal } = o;
  const namespace = user.metadata.namespace;
  const name = stateSecretName(user);
  const record = await client.find<Secret>(SecretResource, { signal, namespace, name });
  // Only the role names matter: a password of the record never reaches the dry run's output.
  const { password: _password, pending: _pending, ...state } = parseState(record);
  return await observeDrift(async ({ adopting, dry }) => {
    const subject = adopting ? asAdopting(user) : user;
    const c = await userContext(subject, {
      targets: o.targets,
      resolved: o.resolved,
      client,
      exec: new PgExecutor(o.resolved.pool, { signal, dryRun: dry }),
      now: () => Date.now(),
      signal,
    });
    if (adopting) c.consent = { granted: true, how: "" };
    await ensureRoles(c, state);
  });
}
