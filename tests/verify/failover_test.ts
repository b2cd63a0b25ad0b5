/**
 * Leader failover (issue 13): two replicas of `dbtether run` with leader election at the default
 * timings (`--lease-duration 15s`, `--renew-deadline 10s`, `--retry-period 2s`), a real apiserver
 * and a real PostgreSQL whose log tags every session with the replica it belongs to. Each round,
 * the leader is SIGKILLed while it works on new pairs, more pairs are applied while nobody leads,
 * and a fresh replica replaces the killed one.
 *
 * Asserted: the standby takes over within the failover budget every time; no mutating statement
 * of a killed leader appears in the server log after its successor's first; at the end every
 * declared database and role exists exactly once and every Secret's password logs in.
 * Figures: seconds from the kill to the standby holding the lease, to its first mutating
 * statement, and to the pairs applied meanwhile being Ready.
 *
 * `DBTETHER_VERIFY_FAILOVERS` (default 3; `make verify-long`: 20) sets the number of kills.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { startEnv, type TestEnv } from "../helpers/env.ts";
import { markedRoles, runsAs, secretData } from "../helpers/fixtures.ts";
import { holder, MUTATING, type Replica, startReplica, tagOf } from "../helpers/replicas.ts";
import { budget } from "../helpers/timeouts.ts";
import { waitFor } from "../helpers/wait.ts";
import { figure, pairs, param, waitPairsReady } from "./workload.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const PER_ROUND = 2;

/** The PostgreSQL name of pair `i` of round prefix `p` (pairs() names them `<p>-<iii>`). */
const pgName = (p: string, i: number) => `${p}_${String(i).padStart(3, "0")}`;

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(1);
  return `median ${at(0.5)} s, max ${s.at(-1)!.toFixed(1)} s over ${s.length}`;
}

async function logLines(env: TestEnv): Promise<string[]> {
  return (await env.pg.readLog()).split("\n");
}

Deno.test(
  { name: "leader failover: SIGKILLed leaders, takeover times, no overlap", ...opts },
  async () => {
    const rounds = param("DBTETHER_VERIFY_FAILOVERS", 3);
    await using env = await startEnv({ pg: true });
    await env.kube.apply(env.clusterManifest("main"));
    const ns = await env.namespace("failover");
    const started: Replica[] = [];
    const spawn = async () => {
      const r = await startReplica(env, { lease: [] });
      started.push(r);
      return r;
    };
    let live = [await spawn(), await spawn()];
    const toLease: number[] = [], toSql: number[] = [], toReady: number[] = [];
    const handovers: { old: Replica; next: Replica }[] = [];
    const prefixes: string[] = [];
    try {
      for (let k = 0; k < rounds; k++) {
        const leader = await waitFor("a leader", async () => {
          const h = await holder(env);
          return live.find((r) => r.identity === h);
        }, { timeoutMs: budget("failover") });
        const standby = live.find((r) => r !== leader)!;
        const before = `r${k}a`, during = `r${k}b`;
        prefixes.push(before, during);
        await env.kube.apply(pairs(ns, { prefix: before, cluster: "main", n: PER_ROUND }));
        // Kill it once it is working on them: its first statement on this round's databases.
        await waitFor(
          "the leader at work on the new pairs",
          async () =>
            (await logLines(env)).some((l) =>
              l.includes(tagOf(leader)) && MUTATING.test(l) && l.includes(`${before}_`)
            ),
          { timeoutMs: budget("ready"), intervalMs: 50 },
        );
        leader.program.process.kill("SIGKILL");
        const killedAt = Date.now();
        await leader.program.process.status;
        // Work that arrives while nobody leads.
        await env.kube.apply(pairs(ns, { prefix: during, cluster: "main", n: PER_ROUND }));
        await waitFor(
          "the standby to take the lease",
          async () => (await holder(env)) === standby.identity,
          {
            timeoutMs: budget("failover"),
            intervalMs: 100,
          },
        );
        toLease.push((Date.now() - killedAt) / 1000);
        await waitFor(
          "the new leader's first mutating statement",
          async () =>
            (await logLines(env)).some((l) => l.includes(tagOf(standby)) && MUTATING.test(l)),
          {
            timeoutMs: budget("failover"),
            intervalMs: 100,
          },
        );
        toSql.push((Date.now() - killedAt) / 1000);
        handovers.push({ old: leader, next: standby });
        live = [standby, await spawn()];
        await waitFor("the pairs applied while nobody led", async () => {
          const done = await Promise.all(Array.from({ length: PER_ROUND }, async (_, i) => {
            const o = await env.getJson<{ status?: { phase?: string } }>(
              "databaseuser",
              `${during}-${String(i).padStart(3, "0")}`,
              ns,
            );
            return o?.status?.phase === "Ready";
          }));
          return done.every(Boolean);
        }, { timeoutMs: budget("ready"), intervalMs: 200 });
        toReady.push((Date.now() - killedAt) / 1000);
      }
      await waitPairsReady(env, ns, { n: 2 * rounds * PER_ROUND, since: Date.now() });

      const lines = await logLines(env);
      for (const { old, next } of handovers) {
        const first = lines.findIndex((l) => l.includes(tagOf(next)) && MUTATING.test(l));
        assert(first >= 0, `${next.identity} sent mutating SQL`);
        const late = lines.slice(first).filter((l) => l.includes(tagOf(old)) && MUTATING.test(l));
        assertEquals(
          late,
          [],
          `no mutating statement of ${old.identity} after ${next.identity}'s first`,
        );
      }
      await assertDeclared(env, ns, prefixes);
    } finally {
      for (const r of started) {
        await r.program.stop("SIGKILL").catch(() => {});
      }
    }
    figure("failover: kill → standby holds the lease", stats(toLease), "failover");
    figure("failover: kill → its first mutating statement", stats(toSql), "failover");
    figure("failover: kill → pairs applied meanwhile Ready", stats(toReady), "ready");
  },
);

/** Each declared database and role once, nothing more; every user logs in with its Secret. */
async function assertDeclared(env: TestEnv, ns: string, prefixes: string[]): Promise<void> {
  const q = async (sql: string) => (await env.pg.superSql(sql)).trim();
  for (const p of prefixes) {
    for (let i = 0; i < PER_ROUND; i++) {
      const db = pgName(p, i), name = `${p}-${String(i).padStart(3, "0")}`;
      assertEquals(
        await q(`SELECT count(*) FROM pg_database WHERE datname = '${db}'`),
        "1",
        `database ${db}`,
      );
      const c = (await secretData(env, { namespace: ns, name: `${name}-credentials` }))!;
      assert(
        await runsAs(env.pg, { user: c.username!, password: c.password!, database: db }),
        `${name} logs in to ${db}`,
      );
    }
  }
  const n = prefixes.length * PER_ROUND;
  assertEquals(await markedRoles(env.pg, ns), 4 * n + n, "the declared roles, no more");
}
