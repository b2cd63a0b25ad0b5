import { assertEquals } from "../../tests/helpers/assert.ts";
import { usersOfCluster } from "./watches.ts";
import { makeDatabase as db, makeUser } from "./fixtures_test_util.ts";

Deno.test("usersOfCluster: through the Databases, or the status when a Database is gone", () => {
  const a = makeUser({ databaseRef: { name: "x" } }, { name: "a" });
  const b = makeUser({ databaseRef: { name: "gone" } }, { name: "b" });
  b.status = { clusterName: "c" };
  const c = makeUser({ databaseRef: { name: "x" } }, { name: "c", namespace: "other" });
  assertEquals(usersOfCluster([a, b, c], [db("x")], "c"), ["default/a", "default/b"]);
  assertEquals(usersOfCluster([a, b, c], [db("x")], "d"), []);
});
