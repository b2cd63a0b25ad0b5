import { assert, assertMatch, assertNotStrictEquals, assertStrictEquals } from "./assert.ts";
import { exists, startPostgres } from "./postgres.ts";
import { selectedMajor } from "./pg_install.ts";

Deno.test("startPostgres gives a non-superuser admin, psql, stop/start and cleanup", async (t) => {
  let dir = "";
  {
    await using pg = await startPostgres();
    dir = pg.dir;
    assert(exists(dir));
    assertMatch(pg.version, /^\d+\.\d+$/);

    await t.step("the server is the major DBTETHER_PG_VERSION picks", async () => {
      assertStrictEquals(pg.major, selectedMajor());
      const num = Number(await pg.superSql("SHOW server_version_num"));
      assertStrictEquals(Math.floor(num / 10000), pg.major);
      assertStrictEquals(pg.version.split(".")[0], String(pg.major));
    });

    await t.step("the admin is LOGIN CREATEDB CREATEROLE and not superuser", async () => {
      const row = await pg.superSql(
        `SELECT rolsuper, rolcanlogin, rolcreatedb, rolcreaterole FROM pg_roles
         WHERE rolname = '${pg.admin.user}'`,
      );
      assertStrictEquals(row.trim(), "f|t|t|t");
    });

    await t.step("psql runs as the admin over TCP with SCRAM", async () => {
      const r = await pg.psql("SELECT current_user, current_setting('is_superuser')");
      assertStrictEquals(r.code, 0, r.stderr);
      assertStrictEquals(r.stdout.trim(), `${pg.admin.user}|off`);
      const bad = await pg.psql("SELECT 1", { password: "wrong" });
      assertNotStrictEquals(bad.code, 0);
      assertMatch(bad.stderr, /password authentication failed/);
    });

    await t.step("TLS is on: psql verifies the server against the helper's CA", async () => {
      const out = await new Deno.Command(`${pg.clientDir}/psql`, {
        args: ["-X", "-A", "-t", "-h", pg.host, "-p", String(pg.port), "-U", pg.admin.user],
        env: {
          PGPASSWORD: pg.admin.password,
          PGDATABASE: "postgres",
          PGSSLMODE: "verify-full",
          PGSSLROOTCERT: pg.caFile!,
        },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = out.stdin.getWriter();
      await w.write(
        new TextEncoder().encode("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
      );
      await w.close();
      const r = await out.output();
      const dec = new TextDecoder();
      assertStrictEquals(dec.decode(r.stdout).trim(), "t", dec.decode(r.stderr));
    });

    await t.step("the admin password is not in the server log", async () => {
      const log = await pg.readLog();
      assertMatch(log, /SHOW server_version/);
      assert(!log.includes(pg.admin.password));
    });

    await t.step("stop makes the server unreachable, start brings it back", async () => {
      await pg.stop();
      const down = await pg.psql("SELECT 1");
      assertNotStrictEquals(down.code, 0);
      await pg.start();
      const up = await pg.psql("SELECT 1");
      assertStrictEquals(up.stdout.trim(), "1");
    });
  }
  assert(!exists(dir), "the temp dir is removed on dispose");
});

Deno.test("startPostgres cleans up when the test body throws", async () => {
  let dir = "";
  try {
    await using pg = await startPostgres({ adminName: "other_admin" });
    dir = pg.dir;
    assertStrictEquals((await pg.psql("SELECT current_user")).stdout.trim(), "other_admin");
    throw new Error("boom");
  } catch (e) {
    assertStrictEquals((e as Error).message, "boom");
  }
  assert(dir !== "" && !exists(dir));
});
