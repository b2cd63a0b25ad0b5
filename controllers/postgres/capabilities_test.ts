import { assertEquals } from "../../tests/helpers/assert.ts";
import { serverCapabilities } from "./capabilities.ts";

Deno.test("serverCapabilities: each difference from the major it changed in", async (t) => {
  const table: [number, Record<string, boolean>][] = [
    [130023, { admin: false, creator: false, publicCreate: true, dbOwner: false, maintain: false }],
    [140023, { admin: false, creator: false, publicCreate: true, dbOwner: true, maintain: false }],
    [150019, { admin: false, creator: false, publicCreate: false, dbOwner: true, maintain: false }],
    [160015, { admin: true, creator: true, publicCreate: false, dbOwner: true, maintain: false }],
    [170011, { admin: true, creator: true, publicCreate: false, dbOwner: true, maintain: true }],
    [180006, { admin: true, creator: true, publicCreate: false, dbOwner: true, maintain: true }],
  ];
  for (const [num, want] of table) {
    await t.step(String(num), () => {
      const c = serverCapabilities(num);
      assertEquals(c.major, Math.floor(num / 10000));
      assertEquals({
        admin: c.grantNeedsAdminOption,
        creator: c.creatorHoldsAdminOption,
        publicCreate: c.publicCreatesInPublic,
        dbOwner: c.hasDatabaseOwnerRole,
        maintain: c.hasMaintain,
      }, want);
    });
  }
});
