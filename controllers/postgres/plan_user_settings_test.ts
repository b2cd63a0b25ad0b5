import { assertEquals, assertMatch, assertThrows } from "../../tests/helpers/assert.ts";
import { TerminalError } from "../../lib/errors.ts";
import { checkSettings, planRoleSettings } from "./plan_user.ts";
import { ident } from "./quote.ts";

Deno.test("planRoleSettings: set what differs, reset the allowed ones not wanted", () => {
  const u = ident("app");
  const have = new Map([["statement_timeout", "1s"], ["work_mem", "8MB"], ["search_path", "x"]]);
  assertEquals(planRoleSettings(u, { statement_timeout: "1s", lock_timeout: "2s" }, have), [
    `ALTER ROLE "app" SET lock_timeout = '2s'`,
    `ALTER ROLE "app" RESET work_mem`,
  ]);
  // A value is a literal, whatever it holds; names outside the list are ignored.
  assertEquals(
    planRoleSettings(u, { timezone: "x'; DROP ROLE app; --", role: "admin" }, undefined),
    [
      `ALTER ROLE "app" SET timezone = 'x''; DROP ROLE app; --'`,
    ],
  );
  assertEquals(planRoleSettings(u, { statement_timeout: "1s", work_mem: "8MB" }, have), []);
  // TimeZone as the server stores it is the same setting: nothing to do, or a RESET of it.
  const tz = new Map([["TimeZone", "Europe/Berlin"]]);
  assertEquals(planRoleSettings(u, { timezone: "Europe/Berlin" }, tz), []);
  assertEquals(planRoleSettings(u, {}, tz), [`ALTER ROLE "app" RESET timezone`]);
});

Deno.test("planRoleSettings: names a DBCluster allows are managed too, quoted part by part", () => {
  const u = ident("app");
  const allowed = ["statement_timeout", "geqo", "myapp.tenant"];
  const have = new Map([["geqo", "on"], ["myapp.tenant", "a"]]);
  assertEquals(planRoleSettings(u, { "myapp.tenant": "b" }, have, undefined, allowed), [
    `ALTER ROLE "app" RESET "geqo"`,
    `ALTER ROLE "app" SET "myapp"."tenant" = 'b'`,
  ]);
  // Not in the allowed names: left alone even when set on the server.
  assertEquals(planRoleSettings(u, {}, have), []);
});

Deno.test("checkSettings: only the built-in names and the DBCluster's, never the forbidden ones", () => {
  const spec = (settings: Record<string, string>, extra: string[] = []) => ({
    username: "app",
    marker: { namespace: "t", name: "app" },
    databases: [],
    settings,
    extraSettings: { names: extra, cluster: "main" },
  });
  assertEquals(checkSettings(spec({ work_mem: "8MB" })).includes("work_mem"), true);
  assertEquals(checkSettings(spec({ geqo: "off" }, ["geqo"])).includes("geqo"), true);
  const refused = (s: Record<string, string>, extra: string[] = []) =>
    assertThrows(() => checkSettings(spec(s, extra)), TerminalError).message;
  assertMatch(refused({ geqo: "off" }), /DBCluster "main" does not list it/);
  // A forbidden name stays forbidden even if a DBCluster lists it (admission refuses that too).
  assertMatch(refused({ log_statement: "all" }, ["log_statement"]), /never allowed/);
  assertMatch(refused({ role: "x" }, ["role"]), /never allowed/);
  assertMatch(refused({ 'a"b': "x" }, ['a"b']), /lowercase/);
});
