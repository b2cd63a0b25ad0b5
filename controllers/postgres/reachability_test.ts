import { assertEquals } from "../../tests/helpers/assert.ts";
import { serverWideFailure } from "./reachability.ts";

Deno.test("a connect failure of one database never says the server is down", () => {
  const pg = (code: string) => Object.assign(new Error("refused"), { code });
  // The tenant's own database: missing, not accepting connections, no pg_hba entry.
  assertEquals(serverWideFailure(pg("3D000")), false);
  assertEquals(serverWideFailure(pg("55000")), false);
  assertEquals(serverWideFailure(pg("28000")), false);
  // The server's: network, timeout, password, too many connections, shutting down.
  for (const code of ["ECONNREFUSED", "ECONNRESET", "CONNECT_TIMEOUT", "28P01", "53300", "57P01"]) {
    assertEquals(serverWideFailure(pg(code)), true, code);
  }
  assertEquals(serverWideFailure(new Error("no code")), true);
  assertEquals(serverWideFailure("a string"), true);
});
