import { assert, assertEquals, assertThrows } from "../tests/helpers/assert.ts";
import {
  buildDumpCommand,
  buildPgRestoreCommand,
  buildPsqlRestoreCommand,
  buildServerVersionCommand,
  connectionEnv,
  dbnameConninfo,
  type PgConnection,
  type ToolCommand,
} from "./dump_command.ts";

const SECRET = "s3cr3t-P@ss word";
const conn: PgConnection = {
  host: "db.example",
  port: 6543,
  user: "admin",
  database: "orders",
  password: SECRET,
  sslmode: "verify-full",
  sslrootcert: "/etc/ca.crt",
};

const builders: [string, ToolCommand][] = [
  ["pg_dump plain", buildDumpCommand("/bin/pg_dump", conn, { format: "plain" })],
  [
    "pg_dump custom",
    buildDumpCommand("/bin/pg_dump", conn, { format: "custom", compressionLevel: 3 }),
  ],
  ["psql restore", buildPsqlRestoreCommand("/bin/psql", conn)],
  ["pg_restore", buildPgRestoreCommand("/bin/pg_restore", conn)],
  ["server version", buildServerVersionCommand("/bin/psql", conn)],
];

Deno.test("the password never appears in argv, only in PGPASSWORD", async (t) => {
  for (const [name, cmd] of builders) {
    await t.step(name, () => {
      for (const a of [cmd.command, ...cmd.args]) assert(!a.includes(SECRET), `argv leaks: ${a}`);
      assertEquals(cmd.env.PGPASSWORD, SECRET);
      assert(cmd.args.includes("--no-password"), "tools must never prompt");
      for (const [k, v] of Object.entries(cmd.env)) {
        if (k !== "PGPASSWORD") assert(!v.includes(SECRET), `env ${k} leaks`);
      }
    });
  }
});

Deno.test("the environment is minimal and libpq-only", () => {
  const env = connectionEnv(conn);
  assertEquals(Object.keys(env).sort(), [
    "LC_ALL",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGHOST",
    "PGPASSFILE",
    "PGPASSWORD",
    "PGPORT",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGUSER",
  ]);
  assertEquals(env.PGPORT, "6543");
  assertEquals(env.PGPASSFILE, "/dev/null");
});

Deno.test("a passfile replaces PGPASSWORD", () => {
  const env = connectionEnv({ ...conn, passfile: "/run/pgpass" });
  assertEquals(env.PGPASSFILE, "/run/pgpass");
  assertEquals(env.PGPASSWORD, undefined);
});

Deno.test("pg_dump argv", async (t) => {
  await t.step("plain drops ownership and privileges by default", () => {
    assertEquals(buildDumpCommand("pg_dump", conn, { format: "plain" }).args, [
      "--no-password",
      "--dbname=dbname='orders'",
      "--format=plain",
      "--no-owner",
      "--no-privileges",
    ]);
  });
  await t.step("custom compresses in pg_dump; ownership kept on request", () => {
    const c = buildDumpCommand("pg_dump", conn, {
      format: "custom",
      compressionLevel: 1,
      includeOwnership: true,
      lockWaitTimeoutSeconds: 30,
    });
    assertEquals(c.args, [
      "--no-password",
      "--dbname=dbname='orders'",
      "--format=custom",
      "--compress=1",
      "--lock-wait-timeout=30000",
    ]);
  });
  await t.step("an exported snapshot goes to --snapshot; anything else is refused", () => {
    const c = buildDumpCommand("pg_dump", conn, {
      format: "plain",
      snapshot: "00000003-0000001B-1",
    });
    assert(c.args.includes("--snapshot=00000003-0000001B-1"));
    assertThrows(
      () => buildDumpCommand("pg_dump", conn, { format: "plain", snapshot: "x --file=/etc/y" }),
      RangeError,
    );
  });
  await t.step("custom with zstd: pg_dump 16's --compress=zstd:N, default level 3", () => {
    const at = (o: { compressionLevel?: number }) =>
      buildDumpCommand("pg_dump", conn, { format: "custom", compression: "zstd", ...o }).args;
    assert(at({}).includes("--compress=zstd:3"));
    assert(at({ compressionLevel: 19 }).includes("--compress=zstd:19"));
    assertThrows(() => at({ compressionLevel: 0 }), RangeError, "invalid zstd level 0");
  });
  await t.step("invalid level", () => {
    assertThrows(
      () => buildDumpCommand("pg_dump", conn, { format: "custom", compressionLevel: 12 }),
      RangeError,
    );
  });
});

Deno.test("psql restore runs one transaction that stops on the first error", () => {
  const c = buildPsqlRestoreCommand("psql", conn);
  for (const a of ["--set=ON_ERROR_STOP=1", "--single-transaction", "--file=-", "--no-psqlrc"]) {
    assert(c.args.includes(a), `missing ${a}`);
  }
  assertEquals(c.env.PGDATABASE, undefined);
  assert(c.args.includes("--dbname=dbname='orders'"));
});

Deno.test("pg_restore connects to the target database", () => {
  const c = buildPgRestoreCommand("pg_restore", conn);
  assert(c.args.includes("--dbname=dbname='orders'"));
  assert(c.args.includes("--single-transaction"));
  assert(c.args.includes("--exit-on-error"));
});

Deno.test("a role travels in PGOPTIONS, escaped for the server's option splitting", async (t) => {
  const cases: [string, string][] = [
    ["app_owner", "-c role=app_owner"],
    ["Mixed Case", "-c role=Mixed\\ Case"],
    ["back\\slash", "-c role=back\\\\slash"],
    ["tab\there\nnl", "-c role=tab\\\there\\\nnl"],
    ["Grüße_owner", "-c role=Grüße_owner"],
  ];
  for (const [role, want] of cases) {
    await t.step(JSON.stringify(role), () => {
      assertEquals(connectionEnv({ ...conn, role }).PGOPTIONS, want);
      assertEquals(buildPsqlRestoreCommand("/bin/psql", { ...conn, role }).env.PGOPTIONS, want);
    });
  }
  await t.step(
    "no role, no PGOPTIONS",
    () => assertEquals(connectionEnv(conn).PGOPTIONS, undefined),
  );
  await t.step("a NUL or an empty role is rejected", () => {
    assertThrows(() => connectionEnv({ ...conn, role: "a\0b" }), RangeError, "NUL");
    assertThrows(() => connectionEnv({ ...conn, role: "" }), RangeError, "empty");
  });
});

Deno.test("the database is a quoted conninfo dbname, never connection parameters", async (t) => {
  // libpq's conninfo syntax: single quotes around the value; \\ and \' inside.
  const cases: [string, string][] = [
    ["orders", "dbname='orders'"],
    ["host=127.0.0.2 port=5 dbname=x", "dbname='host=127.0.0.2 port=5 dbname=x'"],
    ["service=x", "dbname='service=x'"],
    ["passfile=/etc/passwd", "dbname='passfile=/etc/passwd'"],
    ["a'b", "dbname='a\\'b'"],
    ["back\\slash", "dbname='back\\\\slash'"],
    ["' host=evil '", "dbname='\\' host=evil \\''"],
    ['"quoted" name', "dbname='\"quoted\" name'"],
    ["Grüße", "dbname='Grüße'"],
  ];
  for (const [name, want] of cases) {
    await t.step(JSON.stringify(name), () => {
      assertEquals(dbnameConninfo(name), want);
      for (const [, cmd] of builders) {
        const c = cmd.command.endsWith("pg_dump")
          ? buildDumpCommand(cmd.command, { ...conn, database: name }, { format: "plain" })
          : cmd.command.endsWith("pg_restore")
          ? buildPgRestoreCommand(cmd.command, { ...conn, database: name })
          : buildPsqlRestoreCommand(cmd.command, { ...conn, database: name });
        assertEquals(c.args.filter((a) => a.startsWith("--dbname=")), [`--dbname=${want}`]);
        assertEquals(c.env.PGDATABASE, undefined);
      }
      const v = buildServerVersionCommand("/bin/psql", { ...conn, database: name });
      assert(v.args.includes(`--dbname=${want}`));
    });
  }
  await t.step("NUL and empty names are rejected", () => {
    assertThrows(() => dbnameConninfo("a\0b"), RangeError, "NUL");
    assertThrows(() => dbnameConninfo(""), RangeError, "empty");
  });
});

Deno.test("every builder passes the database exactly once", () => {
  for (const [name, cmd] of builders) {
    assertEquals(cmd.args.filter((a) => a.startsWith("--dbname=")).length, 1, name);
  }
});
