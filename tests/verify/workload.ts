/**
 * What the verification suite's tests share: their size parameters (the short variant by
 * default, `make verify-long` raises them), manifests of Database+DatabaseUser pairs, the wait
 * for a namespace's resources to be Ready, and the figure lines the report is built from.
 */
import type { ObjectStore } from "../../storage/store.ts";
import { assert, assertEquals } from "../helpers/assert.ts";
import type { TestEnv } from "../helpers/env.ts";
import type { RunningProgram } from "../helpers/program.ts";
import { type Budget, budget, recordMeasurement } from "../helpers/timeouts.ts";
import { waitFor } from "../helpers/wait.ts";

/** A positive integer from the environment, or `fallback`. */
export function param(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
}

/** `n` Databases `<prefix>-<i>` on `cluster`, each with one DatabaseUser of the same name. */
export function pairs(ns: string, o: { prefix: string; cluster: string; n: number }): string {
  return Array.from({ length: o.n }, (_, i) => {
    const name = `${o.prefix}-${String(i).padStart(3, "0")}`;
    return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterRef: { name: ${o.cluster} }
  deletionPolicy: Delete
---
apiVersion: dbtether.io/v1alpha1
kind: DatabaseUser
metadata: { name: ${name}, namespace: ${ns} }
spec:
  databaseRef: { name: ${name} }
  privileges: readwrite
`;
  }).join("---\n");
}

type Listed = {
  items: {
    metadata: {
      name: string;
      generation: number;
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    };
    status?: { phase?: string; observedGeneration?: number; message?: string };
  }[];
};

/** `kubectl get <kind> -n <ns>` as parsed JSON (no items when the call failed). */
export async function list(env: TestEnv, kind: string, ns: string): Promise<Listed> {
  const r = await env.kube.kubectl(["get", kind, "-n", ns, "-o", "json"]);
  return r.code === 0 ? JSON.parse(r.stdout) as Listed : { items: [] };
}

/** How many of `kind` in `ns` are Ready at their current generation. */
export async function readyCount(env: TestEnv, kind: string, ns: string): Promise<number> {
  return (await list(env, kind, ns)).items.filter((o) =>
    o.status?.phase === "Ready" && o.status.observedGeneration === o.metadata.generation
  ).length;
}

/**
 * Waits until `n` Databases and `n` DatabaseUsers of `ns` are Ready; returns the seconds it
 * took from `since` (ms since the epoch). On timeout the error names what is not Ready and why.
 */
export async function waitPairsReady(
  env: TestEnv,
  ns: string,
  o: { n: number; since: number },
): Promise<number> {
  const done = async () =>
    await readyCount(env, "databases", ns) === o.n &&
    await readyCount(env, "databaseusers", ns) === o.n;
  try {
    await waitFor(`${o.n} pairs Ready in ${ns}`, done, {
      timeoutMs: budget("bulk"),
      intervalMs: 500,
    });
  } catch (e) {
    const stuck = [...(await list(env, "databases", ns)).items]
      .concat((await list(env, "databaseusers", ns)).items)
      .filter((x) => x.status?.phase !== "Ready").slice(0, 5)
      .map((x) => `${x.metadata.name}: ${x.status?.phase} ${x.status?.message ?? ""}`);
    throw new Error(`${(e as Error).message}\n${stuck.join("\n")}`);
  }
  return (Date.now() - o.since) / 1000;
}

/** Prints one figure of the report (`make verify` output is where docs/reliability.md's come from). */
export function figure(name: string, value: string | number, budgetName?: Budget): void {
  const b = budgetName ? ` (budget ${budgetName} ${budget(budgetName) / 1000} s)` : "";
  // "12.3 s", or the worst of several ("median 1.0 s, max 2.0 s over 3").
  const m = /^([0-9.]+) s$|max ([0-9.]+) s/.exec(String(value));
  if (budgetName && m) recordMeasurement(name, budgetName, 1000 * Number(m[1] ?? m[2]));
  console.log(`FIGURE ${name}: ${value}${b}`);
}

/**
 * Asserts what a Completed Backup promises: its object exists, its bytes match
 * `status.sha256`, gunzip cleanly and end with pg_dump's trailer.
 */
export async function assertCompleteDump(
  store: ObjectStore,
  b: { status?: { path?: string; sha256?: string } },
  name: string,
): Promise<void> {
  assert(b.status?.path, `${name} has no status.path`);
  const bytes = new Uint8Array(await new Response(await store.get(b.status.path)).arrayBuffer());
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  const hex = Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, "0")).join("");
  assertEquals(hex, b.status.sha256, `${name}'s object matches its record`);
  const dump = await new Response(
    new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")),
  ).text();
  assert(dump.includes("PostgreSQL database dump complete"), `${name}'s dump is complete`);
}

/** Whether the program is still running (it has not exited by itself). */
export async function running(p: RunningProgram | undefined): Promise<boolean> {
  if (!p) return false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    p.process.status.then(() => true),
    new Promise<false>((r) => (timer = setTimeout(() => r(false), 100))),
  ]);
  clearTimeout(timer);
  return !exited;
}

/** The sum of a counter's samples in a Prometheus text, over the samples `labels` matches. */
export function counterSum(text: string, name: string, labels: RegExp = /.*/): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+]+)$`).exec(line);
    if (m && labels.test(m[1] ?? "")) sum += Number(m[2]);
  }
  return sum;
}
