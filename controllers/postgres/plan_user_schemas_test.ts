import { assertEquals } from "../../tests/helpers/assert.ts";
import { schemaRoles } from "./names.ts";
import { planSearchPathResets, planSearchPaths } from "./plan_user_schemas.ts";

const settings = (db: string, value: string) => new Map([[db, new Map([["search_path", value]])]]);
const member = (db: string, schema: string, level: "readonly" | "admin" = "readonly") => ({
  role: schemaRoles(db, schema)[level],
  member: "u",
  adminOption: false,
});

Deno.test("search_path follows the user's schemas", async (t) => {
  const spec = (schemas: string[]) => ({
    username: "u",
    databases: [{
      name: "shop",
      schemas: schemas.map((name) => ({ name, level: "readonly" as const })),
    }],
  });
  await t.step("set in the order listed, each name an identifier", () => {
    assertEquals(planSearchPaths(spec(['we"ird, $user', "App"]), new Map()), [
      'ALTER ROLE "u" IN DATABASE "shop" SET search_path = "we""ird, $user", "App"',
    ]);
  });
  await t.step("a schema named $user is left out: PostgreSQL reads it as the role's name", () => {
    assertEquals(planSearchPaths(spec(["$user", "app"]), new Map()), [
      'ALTER ROLE "u" IN DATABASE "shop" SET search_path = "app"',
    ]);
    assertEquals(planSearchPaths(spec(["$user"]), new Map()), []);
    assertEquals(
      planSearchPathResets(spec(["$user"]), {
        settings: settings("shop", "app"),
        memberships: [member("shop", "app")],
      }),
      ['ALTER ROLE "u" IN DATABASE "shop" RESET search_path'],
    );
  });
  await t.step("nothing when the stored value lists the same names", () => {
    assertEquals(
      planSearchPaths(spec(['we"ird, $user', "App"]), settings("shop", '"we""ird, $user", "App"')),
      [],
    );
  });
  await t.step("a value changed by hand is put back", () => {
    assertEquals(planSearchPaths(spec(["app"]), settings("shop", '"$user", public')), [
      'ALTER ROLE "u" IN DATABASE "shop" SET search_path = "app"',
    ]);
  });
  const cases: {
    name: string;
    value: string;
    members: ReturnType<typeof member>[];
    want: string[];
  }[] = [
    {
      name: "reset when the schemas go and the value is ours",
      value: "app, reporting",
      members: [member("shop", "app"), member("shop", "reporting", "admin")],
      want: ['ALTER ROLE "u" IN DATABASE "shop" RESET search_path'],
    },
    {
      name: "kept when a name is not one of the user's schemas (set by hand)",
      value: '"$user", app',
      members: [member("shop", "app")],
      want: [],
    },
    {
      name: "kept on a user that never had schemas",
      value: "app",
      members: [],
      want: [],
    },
    {
      name: "kept when the membership is in another database's schema of that name",
      value: "app",
      members: [member("other", "app")],
      want: [],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assertEquals(
        planSearchPathResets(spec([]), {
          settings: settings("shop", c.value),
          memberships: c.members,
        }),
        c.want,
      );
    });
  }
  await t.step("not reset while the database still has schemas", () => {
    assertEquals(
      planSearchPathResets(spec(["app"]), {
        settings: settings("shop", "reporting"),
        memberships: [member("shop", "reporting")],
      }),
      [],
    );
  });
  await t.step("reset in a database no longer listed at all", () => {
    assertEquals(
      planSearchPathResets({ username: "u", databases: [] }, {
        settings: settings("gone", "app"),
        memberships: [member("gone", "app")],
      }),
      ['ALTER ROLE "u" IN DATABASE "gone" RESET search_path'],
    );
  });
});
