import { assertEquals } from "../../tests/helpers/assert.ts";
import type { DatabaseInfo } from "./catalog.ts";
import { alterOptions, createOptions, optionDifferences } from "./plan_database_options.ts";
import { ident } from "./quote.ts";
import { createDatabaseWith } from "./statements.ts";

const info = (o: Partial<DatabaseInfo> = {}): DatabaseInfo => ({
  name: "app",
  owner: "app_owner",
  comment: null,
  allowConnections: true,
  connect: [],
  aclDefault: false,
  connectionLimit: -1,
  isTemplate: false,
  ...o,
});

Deno.test("createOptions: tablespace, ALLOW_CONNECTIONS and IS_TEMPLATE on every major", async (t) => {
  for (const versionNum of [130000, 180000]) {
    await t.step(`PostgreSQL ${versionNum / 10000}`, () => {
      const o = createOptions(
        { tablespace: 'ts"x', allowConnections: false, isTemplate: true, connectionLimit: 2 },
        versionNum,
      );
      assertEquals(
        createDatabaseWith(ident("app"), ident("app_owner"), o),
        'CREATE DATABASE "app" OWNER "app_owner" TABLESPACE "ts""x" ALLOW_CONNECTIONS false ' +
          "CONNECTION LIMIT 2 IS_TEMPLATE true",
      );
    });
  }
});

Deno.test("alterOptions: only what differs, unset left alone", async (t) => {
  const db = ident("app");
  await t.step("isTemplate and allowConnections kept in line", () => {
    assertEquals(alterOptions(db, { isTemplate: true, allowConnections: false }, info()), [
      'ALTER DATABASE "app" WITH IS_TEMPLATE true',
      'ALTER DATABASE "app" WITH ALLOW_CONNECTIONS false',
    ]);
    assertEquals(
      alterOptions(db, { isTemplate: false, allowConnections: true }, info({ isTemplate: true })),
      ['ALTER DATABASE "app" WITH IS_TEMPLATE false'],
    );
  });
  await t.step("equal or unset: nothing", () => {
    assertEquals(alterOptions(db, { isTemplate: false, allowConnections: true }, info()), []);
    assertEquals(alterOptions(db, {}, info({ isTemplate: true, allowConnections: false })), []);
  });
});

Deno.test("optionDifferences: reported per field, normalised names, template not compared", async (t) => {
  const created = {
    encoding: "UTF8",
    lcCollate: "en_US.UTF-8",
    lcCtype: "en_US.UTF-8",
    tablespace: "pg_default",
  };
  await t.step("all equal (utf-8 = UTF8), or nothing set: none", () => {
    assertEquals(
      optionDifferences(
        { encoding: "utf-8", locale: "en_US.utf8", template: "template0", localeProvider: "libc" },
        info({ created }),
      ),
      [],
    );
    assertEquals(optionDifferences({}, info({ created })), []);
    assertEquals(optionDifferences({ encoding: "LATIN1" }, info()), [], "not observed");
  });
  await t.step("each difference named with both values", () => {
    assertEquals(
      optionDifferences(
        { encoding: "LATIN1", lcCtype: "C", tablespace: "fast", localeProvider: "icu" },
        info({ created: { ...created, localeProvider: "c" } }),
      ),
      [
        'encoding: spec "LATIN1", database "UTF8"',
        'lcCtype: spec "C", database "en_US.UTF-8"',
        'localeProvider: spec "icu", database "libc"',
        'tablespace: spec "fast", database "pg_default"',
      ],
    );
  });
});
