import { assertEquals } from "../../tests/helpers/assert.ts";
import { databaseChangeMattersToUsers, usersOfCluster } from "./watches.ts";
import { makeDatabase as db, makeUser } from "./fixtures_test_util.ts";

Deno.test("usersOfCluster: through the Databases, or the status when a Database is gone", () => {
  const a = makeUser({ databaseRef: { name: "x" } }, { name: "a" });
  const b = makeUser({ databaseRef: { name: "gone" } }, { name: "b" });
  b.status = { clusterName: "c" };
  const c = makeUser({ databaseRef: { name: "x" } }, { name: "c", namespace: "other" });
  assertEquals(usersOfCluster([a, b, c], [db("x")], "c"), ["default/a", "default/b"]);
  assertEquals(usersOfCluster([a, b, c], [db("x")], "d"), []);
});

Deno.test("databaseChangeMattersToUsers: what a user's pass reads of its Database", () => {
  const old = db("x", { ready: false });
  old.metadata.generation = 1;
  const same = structuredClone(old);
  assertEquals(databaseChangeMattersToUsers(same, undefined), true, "a create");
  const finalizer = structuredClone(old);
  finalizer.metadata.finalizers = ["dbtether.io/finalizer"];
  assertEquals(databaseChangeMattersToUsers(finalizer, old), false, "a finalizer added");
  const phase = structuredClone(old);
  phase.status!.phase = "Pending";
  phase.metadata.labels = { a: "b" };
  assertEquals(databaseChangeMattersToUsers(phase, old), false, "the phase or a label alone");
  const ready = db("x");
  ready.metadata.generation = 1;
  assertEquals(databaseChangeMattersToUsers(ready, old), true, "Ready");
  const spec = structuredClone(old);
  spec.metadata.generation = 2;
  assertEquals(databaseChangeMattersToUsers(spec, old), true, "a spec change");
  const caughtUp = structuredClone(old);
  caughtUp.status!.conditions![0]!.observedGeneration = 2;
  assertEquals(databaseChangeMattersToUsers(caughtUp, old), true, "Ready for a new generation");
  const renamed = structuredClone(old);
  renamed.status!.databaseName = "y";
  assertEquals(databaseChangeMattersToUsers(renamed, old), true, "the name in use");
  const why = structuredClone(old);
  why.status!.conditions![0]!.reason = "ServerUnreachable";
  assertEquals(databaseChangeMattersToUsers(why, old), true, "another reason");
  const deleting = structuredClone(old);
  deleting.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
  assertEquals(databaseChangeMattersToUsers(deleting, old), true, "deletion");
});
