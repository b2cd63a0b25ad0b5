/**
 * Replicas of `dbtether run` with leader election on (lease in namespace "default"), for tests
 * that kill or freeze a leader, and who holds the lease now.
 */
import type { TestEnv } from "./env.ts";
import { testRunArgs } from "./env.ts";
import { type RunningProgram, startProgram } from "./program.ts";
import { waitFor } from "./wait.ts";

/** Statements that change something, as the server logs them (simple or extended protocol). */
export const MUTATING =
  /(?:statement|execute [^:]*): (?:CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|REASSIGN|COMMIT|INSERT|UPDATE|DELETE|TRUNCATE)\b/i;

/** Lines of the server log written by sessions of `replica`'s pools. */
export function tagOf(r: Replica): string {
  return `[dbtether@${r.identity}/`;
}

/** A running replica and the identity it logged at start. */
export interface Replica {
  program: RunningProgram;
  identity: string;
}

/** Starts a replica with `o.lease` (e.g. --lease-duration 8s ...); waits for its identity. */
export async function startReplica(
  env: TestEnv,
  o: { kubeconfig?: string; lease: string[] },
): Promise<Replica> {
  const program = await startProgram([
    ...testRunArgs(o.kubeconfig ?? env.kube.kubeconfigPath, { backoffMax: "2s" }),
    "--leader-elect",
    "--leader-election-namespace",
    "default",
    ...o.lease,
  ]);
  const identity = await waitFor("the replica's identity in its log", () => {
    for (const line of program.logs().split("\n")) {
      if (!line.includes('"Starting dbtether"')) continue;
      return (JSON.parse(line) as { identity?: string }).identity;
    }
    return undefined;
  });
  return { program, identity };
}

/** The identity holding the leader lease, or undefined. */
export async function holder(env: TestEnv): Promise<string | undefined> {
  const lease = await env.getJson<{ spec?: { holderIdentity?: string } }>(
    "lease",
    "dbtether-leader",
    "default",
  );
  return lease?.spec?.holderIdentity ?? undefined;
}
