/**
 * What one resync period of DatabaseUser passes spends finding each user's Secrets in the
 * Secret informer's cache (issue 12), with and without the informer indexes:
 *
 *   scripts/deno run -A bench/index_bench.ts [--users 500,2000]
 *
 * For N users the cache holds 2N Secrets (each user's application Secret and credentials
 * record, owned through an ownerReference, as the operator writes them) plus N delivered copies
 * (labelled with their source uid). One period is N passes; each pass finds the user's owned
 * Secrets and its copies, as `DatabaseUserReconciler` does: by scanning every cached Secret
 * (before) or by the owner-uid and source-uid indexes (after). Pure in-process work, no servers:
 * the figure is the lookup cost alone, which grows as N² without the index.
 */
import { parseArgs } from "node:util";
import { IndexedCache } from "../controllers/runtime/indexed_cache.ts";
import { OWNER_UID_INDEX, ownerUids } from "../controllers/runtime/indexes.ts";
import type { KubeObject } from "../controllers/runtime/types.ts";
import { secretMeta } from "../controllers/runtime/fixtures_test_util.ts";
import { ownedSecrets } from "../controllers/database_user/observe.ts";
import {
  isCopyOf,
  SOURCE_NAMESPACE_LABEL,
  SOURCE_UID_LABEL,
} from "../controllers/database_user/delivery.ts";
import { secretSourceUid, SOURCE_UID_INDEX } from "../controllers/database_user/watches.ts";
import { makeUser } from "../controllers/database_user/fixtures_test_util.ts";
import type { DatabaseUser } from "../crds/database_user.ts";

type Meta = KubeObject<unknown, unknown>;

function meta(name: string, o: { owner?: string; source?: string; ns?: string }): Meta {
  return secretMeta(name, {
    namespace: o.ns ?? "team",
    owners: o.owner ? [o.owner] : [],
    ...(o.source
      ? { labels: { [SOURCE_UID_LABEL]: o.source, [SOURCE_NAMESPACE_LABEL]: "team" } }
      : {}),
  });
}

function fill(n: number): { cache: IndexedCache<Meta>; users: DatabaseUser[] } {
  const cache = new IndexedCache<Meta>();
  cache.addIndex(OWNER_UID_INDEX, ownerUids);
  cache.addIndex(SOURCE_UID_INDEX, secretSourceUid);
  const users: DatabaseUser[] = [];
  for (let i = 0; i < n; i++) {
    const u = makeUser({}, { name: `app-${i}`, namespace: "team" });
    u.metadata.uid = `uid-${i}`;
    users.push(u);
    for (const s of [`app-${i}`, `app-${i}-state`]) {
      cache.set(`team/${s}`, meta(s, { owner: `uid-${i}` }));
    }
    cache.set(`other/app-${i}`, meta(`app-${i}`, { ns: "other", source: `uid-${i}` }));
  }
  return { cache, users };
}

function period(
  users: DatabaseUser[],
  find: (u: DatabaseUser) => number,
): { ms: number; found: number } {
  const t0 = performance.now();
  let found = 0;
  for (const u of users) found += find(u);
  return { ms: performance.now() - t0, found };
}

function measure(n: number) {
  const { cache, users } = fill(n);
  const scan = (u: DatabaseUser) => {
    const all = [...cache.values()];
    return ownedSecrets(u, all).length + [...cache.values()].filter((s) => isCopyOf(s, u)).length;
  };
  const indexed = (u: DatabaseUser) =>
    ownedSecrets(u, cache.byIndex(OWNER_UID_INDEX, u.metadata.uid!)).length +
    cache.byIndex(SOURCE_UID_INDEX, u.metadata.uid!).filter((s) => isCopyOf(s, u)).length;
  // Warm up both paths, then take the best of 5 periods of each.
  period(users, scan);
  period(users, indexed);
  const best = (f: (u: DatabaseUser) => number) => {
    const runs = Array.from({ length: 5 }, () => period(users, f));
    return { ms: Math.min(...runs.map((r) => r.ms)), found: runs[0]!.found };
  };
  const before = best(scan);
  const after = best(indexed);
  if (before.found !== after.found || after.found !== 3 * n) {
    throw new Error(`Lookups disagree: scan found ${before.found}, index ${after.found}`);
  }
  return { n, secrets: cache.size, before: before.ms, after: after.ms };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { users: { type: "string", default: "500,2000" } },
  });
  console.log("| users | cached Secrets | scan ms / period | index ms / period | ratio |");
  console.log("| ----- | -------------- | ---------------- | ----------------- | ----- |");
  for (const n of values.users.split(",").map(Number)) {
    const r = measure(n);
    console.log(
      `| ${r.n} | ${r.secrets} | ${r.before.toFixed(1)} | ${r.after.toFixed(2)} | ${
        (r.before / r.after).toFixed(0)
      }× |`,
    );
  }
}
