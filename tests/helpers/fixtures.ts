/**
 * What many tests read back from the world the same way: an object's conditions, waiting for a
 * Ready reason, a Secret's data, whether a login works; and a throwaway kubeconfig. One copy here
 * instead of one per test file, so that a fix (the status shown on a timeout, a Secret value that
 * is not ASCII) reaches every test.
 *
 * ```ts
 * const u = await waitReason(env, { kind: "databaseuser", namespace: ns, name: "evil", reason });
 * const creds = await secretData(env, { namespace: ns, name: "evil-credentials" });
 * assert(await runsAs(env.pg, { user: creds!.username!, password: creds!.password!, database }));
 * ```
 */
import { assertEquals } from "./assert.ts";
import type { TestEnv } from "./env.ts";
import type { PgServer } from "./postgres.ts";
import { budget } from "./timeouts.ts";
import { waitFor } from "./wait.ts";

/** A status condition as the API server returns it. */
export type Cond = { type: string; status: string; reason: string; message: string };

/** The parts of a dbtether object (or a Secret) the tests read. */
export type Obj = {
  metadata: {
    name: string;
    resourceVersion: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string; name: string; uid: string }[];
  };
  status?: { phase?: string; message?: string; observedGeneration?: number; conditions?: Cond[] };
  data?: Record<string, string>;
};

/** A DatabaseUser (or one of its Secrets) as the tests read it: `Obj` plus the user's status. */
export type UserObj = Obj & {
  status?: {
    passwordUpdatedAt?: string;
    nextRotation?: string;
    secretNames?: string[];
    activeRole?: string;
  };
};

/** Anything with status conditions (each test types its objects' other fields itself). */
export type Conditioned<C extends { type: string } = { type: string }> = {
  status?: { conditions?: C[] };
};

/** The condition of `type` of an object, or undefined (no object, no such condition). */
export function conditionOf<C extends { type: string }>(
  o: Conditioned<C> | undefined,
  type: string,
): C | undefined {
  return o?.status?.conditions?.find((c) => c.type === type);
}

/** The Ready condition of an object, or undefined. */
export function readyOf<C extends { type: string }>(o: Conditioned<C> | undefined): C | undefined {
  return conditionOf(o, "Ready");
}

/** The Ready condition's reason of an object, or undefined. */
export function readyReason(
  o: Conditioned<{ type: string; reason: string }> | undefined,
): string | undefined {
  return readyOf(o)?.reason;
}

/**
 * Waits until the object's Ready condition has `reason` (within the `ready` budget); returns
 * the object. On timeout the error shows the object's status. `namespace` "" for a
 * cluster-scoped kind.
 */
export async function waitReason<T extends Conditioned<{ type: string; reason: string }> = Obj>(
  env: TestEnv,
  o: { kind: string; namespace: string; name: string; reason: string },
): Promise<T> {
  const what = `${o.kind} ${o.namespace}/${o.name} Ready reason ${o.reason}`;
  return await waitFor(what, async () => {
    const x = await env.getJson<T>(o.kind, o.name, o.namespace);
    return readyReason(x) === o.reason ? x : undefined;
  }, { timeoutMs: budget("ready"), intervalMs: 250 }).catch(async (e) => {
    const x = await env.getJson<T>(o.kind, o.name, o.namespace);
    throw new Error(`${(e as Error).message}; status: ${JSON.stringify(x?.status)}`);
  });
}

/**
 * Waits like `waitReason`, then asserts the object's phase is Failed: a refusal the user must
 * fix, which the operator does not retry as a transient error. Returns the object.
 */
export async function waitRefused(
  env: TestEnv,
  o: { kind: string; namespace: string; name: string; reason: string },
): Promise<Obj> {
  const x = await waitReason<Obj>(env, o);
  assertEquals(x.status?.phase, "Failed");
  return x;
}

/** A Secret's `data` with each value decoded from base64 as UTF-8. */
export function decodeSecretData(data: Record<string, string>): Record<string, string> {
  const dec = (v: string) =>
    new TextDecoder().decode(Uint8Array.from(atob(v), (c) => c.charCodeAt(0)));
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, dec(v)]));
}

/**
 * A Secret's data decoded, read with kubectl (as a user sees it); undefined when the Secret does
 * not exist or has no data.
 */
export async function secretData(
  env: TestEnv,
  ref: { namespace: string; name: string },
): Promise<Record<string, string> | undefined> {
  const s = await env.getJson<Obj>("secret", ref.name, ref.namespace);
  return s?.data ? decodeSecretData(s.data) : undefined;
}

/** How many roles on the server carry a dbtether marker of namespace `ns` (levels and users). */
export async function markedRoles(pg: PgServer, ns: string): Promise<number> {
  return Number(
    (await pg.superSql(
      `SELECT count(*) FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE ` +
        `'dbtether:%/${ns}/%'`,
    )).trim(),
  );
}

/** Whether `login.user` logs in to `login.database` and `sql` (default `SELECT 1`) succeeds. */
export async function runsAs(
  pg: PgServer,
  login: { user: string; password: string; database: string },
  o: { sql?: string } = {},
): Promise<boolean> {
  return (await pg.psql(o.sql ?? "SELECT 1", login)).code === 0;
}

/**
 * A kubeconfig whose one context points at `server` with a token no server accepts: enough for
 * the program to pick a cluster, for tests that never reach one.
 */
export function kubeconfigText(server: string): string {
  return `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "${server}", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: not-a-real-token } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`;
}

/** One object as kubectl names it: `namespace` "" (or absent) for a cluster-scoped kind. */
export type KubectlRef = { kind: string; namespace?: string; name: string };

function kubectlTarget(ref: KubectlRef): string[] {
  return [ref.kind, ref.name, ...(ref.namespace ? ["-n", ref.namespace] : [])];
}

/**
 * `kubectl annotate --overwrite` of one object with `annotation` ("key=value"); fails the test
 * when kubectl does. Tests use it to queue a reconcile without changing the spec.
 */
export async function annotate(env: TestEnv, ref: KubectlRef, annotation: string): Promise<void> {
  await env.kube.kubectl(["annotate", "--overwrite", ...kubectlTarget(ref), annotation], {
    check: true,
  });
}

/** `kubectl patch --type merge` of one object with `patch` (sent as JSON); fails on error. */
export async function mergePatch(env: TestEnv, ref: KubectlRef, patch: unknown): Promise<void> {
  await env.kube.kubectl(
    ["patch", ...kubectlTarget(ref), "--type", "merge", "-p", JSON.stringify(patch)],
    { check: true },
  );
}

/** A tablespace in a directory of the server's OS user, with CREATE for the admin unless not. */
export async function createTablespace(
  pg: PgServer,
  name: string,
  o = { grant: true },
): Promise<void> {
  const dir = `${pg.dir}/${name}`;
  await Deno.mkdir(dir);
  const { uid, gid } = await Deno.stat(pg.dir);
  if (uid !== null) await Deno.chown(dir, uid, gid);
  await pg.superSql(`CREATE TABLESPACE ${name} LOCATION '${dir}'`);
  if (o.grant) await pg.superSql(`GRANT CREATE ON TABLESPACE ${name} TO ${pg.admin.user}`);
}
