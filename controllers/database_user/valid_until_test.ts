import { assert, assertEquals, assertThrows } from "../../tests/helpers/assert.ts";
import { DbtetherError } from "../../lib/errors.ts";
import { validUntilOf } from "./credentials.ts";
import { makeUser } from "./fixtures_test_util.ts";
import { driftMessage } from "./reconcile.ts";
import { checkValidUntil } from "./spec.ts";

const state = { role: "svc", updatedAt: "2026-12-01T10:00:00Z", secrets: [] };

Deno.test("validUntilOf: a fixed time, or the password's time plus afterPasswordChange", () => {
  const fixed = makeUser({ validUntil: { at: "2027-01-01T01:00:00+01:00" } });
  assertEquals(validUntilOf(fixed, { role: "svc", state }), "2027-01-01T00:00:00.000Z");
  assertEquals(
    validUntilOf(makeUser({ validUntil: { at: "infinity" } }), { role: "svc", state }),
    "infinity",
  );
  const after = makeUser({ validUntil: { afterPasswordChange: "2h" } });
  // The role in the record: its updatedAt; the role getting a password now: that moment.
  assertEquals(validUntilOf(after, { role: "svc", state }), "2026-12-01T12:00:00.000Z");
  assertEquals(
    validUntilOf(after, { role: "svc_b", state, set: Date.parse("2026-12-02T00:00:00Z") }),
    "2026-12-02T02:00:00.000Z",
  );
  // Alternating's idle role keeps what it got with its password.
  assertEquals(validUntilOf(after, { role: "svc_b", state }), undefined);
  assertEquals(validUntilOf(makeUser(), { role: "svc", state }), undefined);
});

Deno.test("checkValidUntil: afterPasswordChange must outlast the rotation period", () => {
  const u = (after: string) =>
    makeUser({
      rotation: { days: 1, strategy: "InPlace" },
      validUntil: { afterPasswordChange: after },
    });
  assertEquals(
    assertThrows(() => checkValidUntil(u("24h")), DbtetherError).reason,
    "ValidUntilBeforeRotation",
  );
  checkValidUntil(u("25h"));
  checkValidUntil(makeUser({ validUntil: { afterPasswordChange: "1h" } }));
  // An IAM user has no password whose change the expiry could follow.
  const iam = makeUser({
    authentication: { type: "awsIam", region: "eu-west-1" },
    validUntil: { afterPasswordChange: "744h" },
  });
  const refused = assertThrows(() => checkValidUntil(iam), DbtetherError);
  assertEquals(refused.reason, "InvalidAuthentication");
  assert(refused.message.includes("use validUntil.at"), refused.message);
  checkValidUntil(makeUser({
    authentication: { type: "awsIam", region: "eu-west-1" },
    validUntil: { at: "2030-01-01T00:00:00Z" },
  }));
});

Deno.test("driftMessage: the statements, cut to fit an Event", () => {
  assertEquals(
    driftMessage(['GRANT "pg_monitor" TO "svc"']),
    'Put back what differed from the spec on the server: GRANT "pg_monitor" TO "svc"',
  );
  const long = driftMessage(Array.from({ length: 100 }, () => "ALTER ROLE x RESET work_mem"));
  assertEquals(long.length, 1000);
  assertEquals(long.endsWith("…"), true);
});
