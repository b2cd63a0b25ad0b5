import { assertEquals } from "../../tests/helpers/assert.ts";
import type { Database } from "../../crds/database.ts";
import type { DatabaseUser } from "../../crds/database_user.ts";
import { makeUser } from "../database_user/fixtures_test_util.ts";
import { schemaOwnerUsers, userChangeMattersToOwners } from "./watches.ts";

Deno.test("schemaOwnerUsers: the users a Database's schemas name, in its namespace", () => {
  const db = {
    metadata: { name: "shop", namespace: "team" },
    spec: {
      clusterRef: { name: "main" },
      schemas: [
        { name: "a", owner: { databaseUser: "mig" } },
        { name: "b", owner: { databaseUser: "mig" } },
        { name: "c", owner: { level: "readwrite" } },
        { name: "d" },
      ],
    },
  } as unknown as Database;
  assertEquals(schemaOwnerUsers(db), ["team/mig"]);
});

Deno.test("userChangeMattersToOwners: what makes a user able to own a schema", async (t) => {
  const base = makeUser({}, { name: "mig", namespace: "team" });
  const ready = (u: DatabaseUser, status: "True" | "False"): DatabaseUser => ({
    ...u,
    status: {
      conditions: [{
        type: "Ready",
        status,
        reason: "R",
        message: "m",
        lastTransitionTime: "2026-01-01T00:00:00Z",
      }],
    },
  } as DatabaseUser);
  const cases: [string, DatabaseUser, DatabaseUser | undefined, boolean][] = [
    ["created", base, undefined, true],
    ["spec changed", { ...base, metadata: { ...base.metadata, generation: 2 } }, base, true],
    [
      "deletion started",
      { ...base, metadata: { ...base.metadata, deletionTimestamp: "2026-01-01T00:00:00Z" } },
      base,
      true,
    ],
    ["became Ready", ready(base, "True"), ready(base, "False"), true],
    ["status otherwise (a rotation)", ready(base, "True"), ready(base, "True"), false],
  ];
  for (const [name, now, old, want] of cases) {
    await t.step(name, () => assertEquals(userChangeMattersToOwners(now, old), want));
  }
});
