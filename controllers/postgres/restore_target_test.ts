import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { borrowRole } from "./borrow.ts";
import { formatMarker, parseMarker } from "./names.ts";
import { utf8Length } from "./quote.ts";
import { restorePlacement, verifyPlacement } from "./restore_target.ts";

const place = (target: string, uid = "3f8a-uid") =>
  restorePlacement({
    target,
    owner: `${target}_owner`,
    restore: { namespace: "team-b", name: "r1", uid },
    database: { namespace: "team-b", name: "app" },
  });

Deno.test("restorePlacement: deterministic, distinct, bounded names", async (t) => {
  await t.step("short names", () => {
    const p = place("app");
    assert(/^app_restore_[0-9a-f]{8}$/.test(p.scratch), p.scratch);
    assert(/^app_replaced_[0-9a-f]{8}$/.test(p.replaced), p.replaced);
    assert(/^dbtether_restore_[0-9a-f]{16}$/.test(p.loginRole), p.loginRole);
    assertEquals(place("app"), p);
    assert(place("app", "other-uid").scratch !== p.scratch);
  });
  await t.step("a 63-byte hostile name still yields names of at most 63 bytes", () => {
    const long = "host=127.0.0.2 port=1 dbname=x 'q' \\ ü".padEnd(60, "x");
    const p = place(long);
    for (const n of [p.scratch, p.replaced, p.loginRole]) assert(utf8Length(n) <= 63, n);
    assert(p.scratch !== p.replaced && p.scratch !== long && p.replaced !== long);
  });
  await t.step("markers: the Restore's on its objects, the Database's claim moves", () => {
    const p = place("app");
    assertEquals(formatMarker(p.restore), "dbtether:Restore/team-b/r1");
    assertEquals(formatMarker(p.claim), "dbtether:team-b/app");
    assertEquals(parseMarker(formatMarker(p.restore)), p.restore);
  });
});

Deno.test("verifyPlacement elsewhere: an owner role of its own, from the schedule's uid", () => {
  const at = (elsewhere: boolean, uid = "9c1e-uid") =>
    verifyPlacement({
      target: "app",
      owner: "app_owner",
      schedule: { namespace: "team-b", name: "nightly", uid },
      database: { namespace: "team-b", name: "app" },
      elsewhere,
    });
  const home = at(false), far = at(true);
  assertEquals([home.owner, home.ownOwner], ["app_owner", undefined]);
  assert(/^dbtether_verifyowner_[0-9a-f]{16}$/.test(far.owner), far.owner);
  assertEquals(far.ownOwner, true);
  assertEquals([far.scratch, far.loginRole], [home.scratch, home.loginRole]);
  assert(far.owner.endsWith(far.loginRole.slice("dbtether_verify_".length)));
  assert(at(true, "other-uid").owner !== far.owner);
  assertEquals(formatMarker(far.restore), "dbtether:BackupSchedule/team-b/nightly");
});

Deno.test("borrowRole: one per resource, marked", () => {
  const a = borrowRole({ kind: "Database", namespace: "n", name: "x" });
  const b = borrowRole({ kind: "Restore", namespace: "n", name: "x" });
  assert(a.name !== b.name);
  assert(/^dbtether_borrow_[0-9a-f]{16}$/.test(a.name));
  assertEquals(formatMarker(a.marker), "dbtether:SessionBorrow/n/Database.x");
  assertEquals(parseMarker(formatMarker(a.marker)), a.marker);
});
