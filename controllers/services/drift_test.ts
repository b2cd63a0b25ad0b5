import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { TerminalError } from "../../lib/errors.ts";
import { inSync, inSyncCondition, observeDrift } from "./drift.ts";

const VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";

Deno.test("observeDrift", async (t) => {
  await t.step("nothing to send: in sync", async () => {
    const d = await observeDrift(() => Promise.resolve());
    assert(inSync(d));
    assertEquals(inSyncCondition(d, "role x").status, true);
  });
  await t.step("statements are the differences, redacted, once each", async () => {
    const d = await observeDrift(({ dry }) => {
      dry.statements.push({ sql: `CREATE ROLE "a" LOGIN PASSWORD '${VERIFIER}'` });
      dry.statements.push({ sql: 'ALTER ROLE "a" CONNECTION LIMIT 7', database: "shop" });
      dry.statements.push({ sql: 'ALTER ROLE "a" CONNECTION LIMIT 7', database: "shop" });
      return Promise.resolve();
    });
    assertEquals(d.differences, [
      `CREATE ROLE "a" LOGIN PASSWORD '<redacted>'`,
      'ALTER ROLE "a" CONNECTION LIMIT 7 (in "shop")',
    ]);
    const c = inSyncCondition(d, 'role "a"');
    assertEquals([c.status, c.reason], [false, "Differs"]);
    assert(!c.message.includes("SCRAM"), c.message);
    assert(c.message.includes("2 difference(s)"), c.message);
  });
  await t.step("a refusal is kept and the plan runs again as adopting", async () => {
    const seen: boolean[] = [];
    const d = await observeDrift(({ adopting, dry }) => {
      seen.push(adopting);
      if (!adopting) throw new TerminalError("DatabaseExistsUnmanaged", "not ours");
      dry.statements.push({ sql: "COMMENT ON DATABASE \"x\" IS 'dbtether:ns/x'" });
      return Promise.resolve();
    });
    assertEquals(seen, [false, true]);
    assertEquals(d.refusal?.reason, "DatabaseExistsUnmanaged");
    assertEquals(d.differences.length, 1);
    assert(inSyncCondition(d, "database x").message.includes("Manage would refuse: not ours"));
  });
  await t.step("other errors are thrown (retried), not reported as drift", async () => {
    let err: unknown;
    await observeDrift(() => {
      throw new TerminalError("ClusterUnreachable", "down");
    }).catch((e) => err = e);
    assert(err instanceof TerminalError && err.reason === "ClusterUnreachable");
  });
  await t.step("a long list is cut", () => {
    const differences = Array.from({ length: 30 }, (_, i) => `GRANT ${i}`);
    const m = inSyncCondition({ differences, notes: [] }, "role x").message;
    assert(m.includes("and 10 more") && !m.includes("GRANT 25"), m);
  });
});
