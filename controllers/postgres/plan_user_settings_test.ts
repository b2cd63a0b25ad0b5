import { assertEquals } from "../../tests/helpers/assert.ts";
import { planRoleSettings } from "./plan_user.ts";
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
