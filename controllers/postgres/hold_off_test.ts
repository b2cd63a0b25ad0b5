import { assert, assertEquals, assertThrows } from "../../tests/helpers/assert.ts";
import { ConnectHoldOff, isConnectTimeout } from "./hold_off.ts";

const timeout = Object.assign(new Error("write CONNECT_TIMEOUT 127.0.0.1:1"), {
  code: "CONNECT_TIMEOUT",
});

Deno.test("ConnectHoldOff: a timeout holds off runs, one retries after, success ends it", () => {
  let now = 1000;
  const h = new ConnectHoldOff(30_000, () => now);
  assertEquals(h.admit(), false, "a pool that never timed out connects freely");
  h.settle(false, timeout);
  assertThrows(() => h.admit(), Error, "CONNECT_TIMEOUT");
  now += 29_999;
  assertThrows(() => h.admit(), Error, "CONNECT_TIMEOUT");
  now += 1;
  assertEquals(h.admit(), true, "after the hold-off one run tries");
  assertThrows(() => h.admit(), Error, "CONNECT_TIMEOUT", "the others fail at once meanwhile");
  h.settle(true, timeout);
  assertThrows(() => h.admit(), Error, "CONNECT_TIMEOUT", "a second timeout holds off again");
  now += 30_000;
  assertEquals(h.admit(), true);
  h.settle(true);
  assertEquals(h.admit(), false, "connected: no hold-off any more");
});

Deno.test("ConnectHoldOff: only connect timeouts count", () => {
  const h = new ConnectHoldOff(30_000, () => 0);
  const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
  h.settle(false, refused);
  assertEquals(h.admit(), false);
  assert(isConnectTimeout(timeout));
  assert(!isConnectTimeout(refused) && !isConnectTimeout("CONNECT_TIMEOUT"));
});
