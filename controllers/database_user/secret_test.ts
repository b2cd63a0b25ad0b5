import { assertEquals } from "../../tests/helpers/assert.ts";
import {
  connectionUri,
  decideSecret,
  decodeData,
  desiredSecret,
  readCredentials,
  renderData,
  type Secret,
} from "./secret.ts";
import { makeUser } from "./fixtures_test_util.ts";

const conn = {
  host: "db.example",
  port: 5432,
  database: "my_app",
  databases: ["my_app"],
  username: "my-app-readonly",
  password: "p@ss:w/rd#?%",
};

Deno.test("secret templates", async (t) => {
  const cases: [string, Record<string, unknown>, string[]][] = [
    ["raw", { template: "raw" }, ["database", "host", "password", "port", "uri", "username"]],
    ["DB", { template: "DB" }, ["DB_HOST", "DB_NAME", "DB_PASSWORD", "DB_PORT", "DB_USER"]],
    ["DATABASE", { template: "DATABASE" }, [
      "DATABASE_HOST",
      "DATABASE_NAME",
      "DATABASE_PASSWORD",
      "DATABASE_PORT",
      "DATABASE_USER",
    ]],
    ["POSTGRES", { template: "POSTGRES" }, [
      "POSTGRES_DATABASE",
      "POSTGRES_HOST",
      "POSTGRES_PASSWORD",
      "POSTGRES_PORT",
      "POSTGRES_USER",
    ]],
    ["dsn", { template: "dsn" }, ["dsn"]],
    ["custom", { template: "custom", keys: { password: "PGPASSWORD", host: "PGHOST" } }, [
      "PGHOST",
      "PGPASSWORD",
      "database",
      "port",
      "username",
    ]],
  ];
  for (const [name, spec, keys] of cases) {
    await t.step(name, () => {
      const data = renderData(conn, { onConflict: "Fail", ...spec } as never);
      assertEquals(Object.keys(data).sort(), keys);
      assertEquals(readCredentials(data, { onConflict: "Fail", ...spec } as never), {
        username: conn.username,
        password: conn.password,
      });
    });
  }
  await t.step("raw lists several databases", () => {
    const data = renderData({ ...conn, databases: ["a", "b"] }, {
      template: "raw",
      onConflict: "Fail",
    });
    assertEquals(data.databases, "a,b");
  });
  await t.step("old Secrets carry user instead of username", () => {
    assertEquals(
      readCredentials({ user: "u", password: "p" }, { template: "raw", onConflict: "Fail" }),
      { username: "u", password: "p" },
    );
  });
});

Deno.test("connection URIs are escaped", () => {
  const uri = connectionUri(conn, "postgresql");
  assertEquals(uri, "postgresql://my-app-readonly:p%40ss%3Aw%2Frd%23%3F%25@db.example:5432/my_app");
  const u = new URL(uri);
  assertEquals(decodeURIComponent(u.password), conn.password);
  assertEquals(connectionUri({ ...conn, host: "::1" }, "postgres").includes("@[::1]:5432/"), true);
});

Deno.test("onConflict", async (t) => {
  const foreign: Secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "x", uid: "s1" },
    spec: undefined,
    data: { other: btoa("keep") },
  };
  await t.step("Fail refuses a foreign Secret", () => {
    assertEquals(decideSecret(foreign, makeUser()).kind, "conflict");
  });
  await t.step("Adopt replaces its data", () => {
    const user = makeUser({ secret: { template: "raw", onConflict: "Adopt" } });
    const d = decideSecret(foreign, user);
    assertEquals(d, { kind: "update", keepForeignKeys: false });
  });
  await t.step("Merge keeps foreign keys", () => {
    const user = makeUser({ secret: { template: "raw", onConflict: "Merge" } });
    const s = desiredSecret({
      name: "x",
      owner: user,
      ownerRef: {
        apiVersion: "a",
        kind: "DatabaseUser",
        name: "n",
        uid: "uid-1",
        controller: true,
      },
      databaseResource: "db",
      data: { password: "p" },
      existing: foreign,
      keepForeignKeys: true,
    })!;
    assertEquals(decodeData(s), { other: "keep", password: "p" });
    assertEquals(s.metadata.labels?.["app.kubernetes.io/managed-by"], "dbtether");
  });
  await t.step("an up-to-date Secret is not rewritten", () => {
    const user = makeUser();
    const ref = {
      apiVersion: "a",
      kind: "DatabaseUser",
      name: "n",
      uid: "uid-1",
      controller: true,
    };
    const first = desiredSecret({
      name: "x",
      owner: user,
      ownerRef: ref,
      databaseResource: "db",
      data: { password: "p" },
      existing: undefined,
      keepForeignKeys: false,
    })!;
    const again = desiredSecret({
      name: "x",
      owner: user,
      ownerRef: ref,
      databaseResource: "db",
      data: { password: "p" },
      existing: first,
      keepForeignKeys: false,
    });
    assertEquals(again, undefined);
    assertEquals(decideSecret(first, user), { kind: "update", keepForeignKeys: false });
  });
});

Deno.test("reader endpoint keys", async (t) => {
  const reader = { ...conn, reader: { host: "ro.db.example", port: 6432 } };
  const cases: [string, Record<string, unknown>, Record<string, string>][] = [
    ["raw", { template: "raw" }, {
      readerHost: "ro.db.example",
      readerPort: "6432",
      uri_ro: `postgresql://my-app-readonly:p%40ss%3Aw%2Frd%23%3F%25@ro.db.example:6432/my_app`,
    }],
    ["DB", { template: "DB" }, { DB_READER_HOST: "ro.db.example", DB_READER_PORT: "6432" }],
    ["DATABASE", { template: "DATABASE" }, {
      DATABASE_READER_HOST: "ro.db.example",
      DATABASE_READER_PORT: "6432",
    }],
    ["POSTGRES", { template: "POSTGRES" }, {
      POSTGRES_READER_HOST: "ro.db.example",
      POSTGRES_READER_PORT: "6432",
    }],
    ["dsn", { template: "dsn" }, {
      dsn_ro: `postgres://my-app-readonly:p%40ss%3Aw%2Frd%23%3F%25@ro.db.example:6432/my_app`,
    }],
    ["custom", { template: "custom", keys: { host: "PGHOST" } }, {
      readerHost: "ro.db.example",
      readerPort: "6432",
    }],
  ];
  for (const [name, spec, extra] of cases) {
    await t.step(`${name}: the primary keys unchanged, the reader keys added`, () => {
      const secret = { onConflict: "Fail", ...spec } as never;
      const without = renderData(conn, secret);
      const withReader = renderData(reader, secret);
      assertEquals(withReader, { ...without, ...extra });
      // The primary keys still name the writer; readCredentials still finds the login.
      assertEquals(readCredentials(withReader, secret), {
        username: conn.username,
        password: conn.password,
      });
    });
  }
  await t.step("without a reader endpoint the data is exactly as before", () => {
    assertEquals(
      Object.keys(renderData(conn, { onConflict: "Fail", template: "raw" } as never)).sort(),
      ["database", "host", "password", "port", "uri", "username"],
    );
  });
});

Deno.test("an IAM user's Secret: no password anywhere, awsIam's region", () => {
  const { password: _, ...iam } = conn;
  const raw = renderData({ ...iam, region: "eu-west-1" }, {
    template: "raw",
    onConflict: "Fail",
  } as never);
  assertEquals(raw, {
    host: "db.example",
    port: "5432",
    database: "my_app",
    username: "my-app-readonly",
    region: "eu-west-1",
    uri: "postgresql://my-app-readonly@db.example:5432/my_app",
  });
  const db = renderData({ ...iam, region: "eu-west-1" }, {
    template: "DB",
    onConflict: "Fail",
  } as never);
  assertEquals(Object.keys(db).sort(), ["DB_HOST", "DB_NAME", "DB_PORT", "DB_REGION", "DB_USER"]);
  assertEquals(renderData(iam, { template: "dsn", onConflict: "Fail" } as never), {
    dsn: "postgres://my-app-readonly@db.example:5432/my_app",
  });
  // The region beside the dsn: a libpq URI has no place for it.
  assertEquals(
    renderData({ ...iam, region: "eu-west-1" }, { template: "dsn", onConflict: "Fail" } as never),
    { dsn: "postgres://my-app-readonly@db.example:5432/my_app", region: "eu-west-1" },
  );
});
