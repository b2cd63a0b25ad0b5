import { assertEquals } from "../../tests/helpers/assert.ts";
import { InvalidIdentifierError } from "../postgres/quote.ts";
import { ConflictError, RetryableError, TerminalError } from "../../lib/errors.ts";
import { failureOf } from "./failure.ts";

Deno.test("failureOf maps every thrown value to one reason and retry decision", async (t) => {
  await t.step("a terminal error keeps its reason and is not retried", () => {
    assertEquals(failureOf(new TerminalError("InvalidSpec", "bad")), {
      reason: "InvalidSpec",
      message: "bad",
      terminal: true,
    });
  });
  await t.step("a retryable error keeps its reason and is retried", () => {
    assertEquals(failureOf(new RetryableError("ClusterUnreachable", "down")).terminal, false);
    assertEquals(failureOf(new ConflictError("stale")).reason, "Conflict");
  });
  await t.step("a subclass of TerminalError is renamed, not swallowed by its base", () => {
    const e = new InvalidIdentifierError("Cannot use role name: too long");
    assertEquals(failureOf(e).reason, "InvalidName");
    assertEquals(failureOf(e, { rename: { InvalidName: "InvalidUsername" } }), {
      reason: "InvalidUsername",
      message: "Cannot use role name: too long",
      terminal: true,
    });
  });
  await t.step("anything else is an unexpected, retried Error", () => {
    assertEquals(failureOf("boom"), { reason: "Error", message: "boom", terminal: false });
    assertEquals(failureOf(new TypeError("x"), { fallback: "Failed" }).reason, "Failed");
  });
});
