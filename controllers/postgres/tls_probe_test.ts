import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { looksLikeTlsRefusal, tlsRefusedError } from "./tls_probe.ts";

Deno.test("looksLikeTlsRefusal: only the socket errors a declined TLS handshake gives", () => {
  for (
    const m of [
      "Client network socket disconnected before secure TLS connection was established",
      "read ECONNRESET",
    ]
  ) assert(looksLikeTlsRefusal(new Error(m)), m);
  for (const m of ["password authentication failed", "connect ECONNREFUSED 127.0.0.1:5432"]) {
    assert(!looksLikeTlsRefusal(new Error(m)), m);
  }
});

Deno.test("tlsRefusedError says what to set", () => {
  const e = tlsRefusedError("127.0.0.1:5432", "require", new Error("x"));
  assertEquals(e.reason, "ClusterUnreachable");
  assert(e.message.includes("does not accept TLS") && e.message.includes("sslMode: disable"));
});
