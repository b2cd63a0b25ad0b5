import { assertEquals } from "../../tests/helpers/assert.ts";
import { commitPending, parseState, stateSecret } from "./state.ts";
import { makeUser } from "./fixtures_test_util.ts";

Deno.test("credentials record round trip", () => {
  const owner = makeUser();
  const ownerRef = {
    apiVersion: "a",
    kind: "DatabaseUser",
    name: "n",
    uid: "uid-1",
    controller: true,
  };
  const state = {
    role: "app",
    password: "old",
    updatedAt: "2026-01-01T00:00:00Z",
    lastRequest: "1",
    secrets: ["s1"],
    pending: { role: "app_b", password: "new", reason: "Requested" as const, request: "2" },
  };
  const s = stateSecret(state, { owner, ownerRef, existing: undefined });
  assertEquals(parseState(s), state);
  assertEquals(commitPending(state, "2026-01-02T00:00:00Z"), {
    role: "app_b",
    password: "new",
    updatedAt: "2026-01-02T00:00:00Z",
    lastRequest: "2",
    secrets: [],
  });
  assertEquals(parseState(undefined), { secrets: [] });
});
