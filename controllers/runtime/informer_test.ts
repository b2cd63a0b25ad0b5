import { assertEquals } from "../../tests/helpers/assert.ts";
import { systemClock } from "../../lib/clock.ts";
import { GoneError } from "../../lib/errors.ts";
import { nullLogger } from "../../lib/log.ts";
import type { KubeClient, ListResult, WatchEvent } from "./kube.ts";
import { SecretResource } from "./kube.ts";
import { Informer } from "./informer.ts";
import { OWNER_UID_INDEX, ownerUids } from "./indexes.ts";
import type { KubeObject } from "./types.ts";
import { secretMeta } from "./fixtures_test_util.ts";

type Obj = KubeObject<unknown, unknown>;

function secret(name: string, rv: string, owners: string[]): Obj {
  return secretMeta(name, { resourceVersion: rv, owners });
}

/**
 * A client that answers the informer's lists and watches from a script: each list returns the
 * next snapshot, each watch yields the next batch of events and then ends as the script says
 * (410 Gone, or waits for the abort). Only the cache is under test; the informer's handling of
 * a real apiserver's 410 is in tests/runtime_test.ts.
 */
function scriptedClient(o: {
  lists: Obj[][];
  watches: { events: WatchEvent<Obj>[]; end: "gone" | "hang" }[];
  onHang: () => void;
}): KubeClient {
  let list = 0;
  let watch = 0;
  return {
    list: (): Promise<ListResult<Obj>> => {
      const items = structuredClone(o.lists[list++] ?? []);
      return Promise.resolve({ items, metadata: { resourceVersion: String(100 + list) } });
    },
    async *watch(_res: unknown, w: { signal: AbortSignal }) {
      const step = o.watches[watch++] ?? { events: [], end: "hang" };
      for (const ev of step.events) yield structuredClone(ev);
      if (step.end === "gone") throw new GoneError("Watch expired: too old resource version");
      o.onHang();
      await new Promise((r) => w.signal.addEventListener("abort", r, { once: true }));
    },
  } as unknown as KubeClient;
}

Deno.test("informer indexes follow watch events, and a relist after a watch gap", async () => {
  let hung: () => void = () => {};
  const watching = new Promise<void>((r) => hung = r);
  const client = scriptedClient({
    lists: [
      [secret("a", "1", ["u1"]), secret("b", "1", ["u1"])],
      // After the gap: "a" and "d" were deleted, "b" moved to another owner, "c" appeared; none
      // of it came as a watch event.
      [secret("b", "5", ["u2"]), secret("c", "5", ["u1"])],
    ],
    watches: [
      {
        events: [
          { type: "ADDED", object: secret("d", "2", ["u3"]) },
          { type: "MODIFIED", object: secret("a", "3", ["u1", "u3"]) },
        ],
        end: "gone",
      },
      { events: [], end: "hang" },
    ],
    onHang: () => hung(),
  });
  const informer = new Informer<Obj>({
    client,
    resource: SecretResource,
    clock: systemClock,
    logger: nullLogger,
    minBackoffMs: 1,
  });
  informer.addIndex(OWNER_UID_INDEX, ownerUids);
  const names = (uid: string) =>
    informer.byIndex(OWNER_UID_INDEX, uid).map((s) => s.metadata.name).sort();
  const seen: Record<string, string[]>[] = [];
  // Handlers run after the store changed: what they read through the index is the new state.
  informer.addHandler((obj, _old, deleted) => {
    if (!deleted && obj.metadata.name === "a" && obj.metadata.resourceVersion === "3") {
      seen.push({ u1: names("u1"), u3: names("u3") });
    }
  });
  const stop = new AbortController();
  const running = informer.run(stop.signal);
  await watching;
  stop.abort();
  await running;
  assertEquals(seen, [{ u1: ["a", "b"], u3: ["a", "d"] }]);
  assertEquals(names("u1"), ["c"]);
  assertEquals(names("u2"), ["b"]);
  assertEquals(names("u3"), []);
  assertEquals(informer.list().map((s) => s.metadata.name).sort(), ["b", "c"]);
});
