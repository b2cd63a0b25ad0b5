import { assertEquals } from "../../tests/helpers/assert.ts";
import { serverCapabilities } from "./capabilities.ts";
import { borrowRole, planBorrow, type SessionRole } from "./borrow.ts";

const borrower = { kind: "Database", namespace: "team-a", name: "app" };
const role = (name: string, o: Partial<SessionRole> = {}): SessionRole => ({
  name,
  superuser: false,
  privileges: false,
  adminOption: false,
  ...o,
});
const roles = [
  role("made_by_admin", { adminOption: true }),
  role("made_by_other"),
  role("inherited", { privileges: true }),
  role("root", { superuser: true }),
];

Deno.test("planBorrow pins what each major lets a CREATEROLE admin borrow", async (t) => {
  const b = borrowRole(borrower).name;
  const statements = (borrowed: string[]) => [{
    sql: `CREATE ROLE "${b}" NOLOGIN`,
    together: [
      `COMMENT ON ROLE "${b}" IS 'dbtether:SessionBorrow/team-a/Database.app'`,
      ...borrowed.map((r) => `GRANT "${r}" TO "${b}"`),
      `GRANT "${b}" TO "dbtether_admin"`,
    ],
  }];
  for (const num of [130023, 140023, 150019]) {
    await t.step(`${num}: any non-superuser role`, () => {
      const p = planBorrow(serverCapabilities(num), { borrower, admin: "dbtether_admin", roles });
      assertEquals(p.borrowed, ["made_by_admin", "made_by_other"]);
      assertEquals(p.blocked, ["root"]);
      assertEquals(p.statements, statements(["made_by_admin", "made_by_other"]));
    });
  }
  for (const num of [160015, 170011, 180006]) {
    await t.step(`${num}: only roles held WITH ADMIN OPTION`, () => {
      const p = planBorrow(serverCapabilities(num), { borrower, admin: "dbtether_admin", roles });
      assertEquals(p.borrowed, ["made_by_admin"]);
      assertEquals(p.blocked, ["made_by_other", "root"]);
      assertEquals(p.statements, statements(["made_by_admin"]));
    });
  }
  await t.step("nothing to borrow: no statement", () => {
    const p = planBorrow(serverCapabilities(180006), {
      borrower,
      admin: "dbtether_admin",
      roles: [role("made_by_other"), role("inherited", { privileges: true })],
    });
    assertEquals(p, { statements: [], borrowed: [], blocked: ["made_by_other"] });
  });
});
