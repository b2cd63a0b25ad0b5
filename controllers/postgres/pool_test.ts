import assert from "node:assert/strict";
import { startPostgres } from "../../tests/helpers/postgres.ts";
import { poolKey, PoolRegistry, type ServerConfig, ServerPool, tlsOptions } from "./pool.ts";

Deno.test("tlsOptions maps libpq modes", () => {
  assert.equal(tlsOptions("disable"), false);
  assert.equal(tlsOptions("require"), "require");
  const ca = tlsOptions("require", { ca: "PEM" }) as Record<string, unknown>;
  assert.equal(ca.rejectUnauthorized, true);
  assert.equal(typeof ca.checkServerIdentity, "function");
  assert.deepEqual(tlsOptions("verify-full"), { rejectUnauthorized: true });
  assert.deepEqual(tlsOptions("verify-full", { ca: "PEM" }), {
    rejectUnauthorized: true,
    ca: "PEM",
  });
});

Deno.test("poolKey ignores credentials", () => {
  const a: ServerConfig = { host: "h", port: 1, user: "u", password: "p1" };
  assert.equal(poolKey(a), poolKey({ ...a, password: "p2", ca: "x" }));
  assert.notEqual(poolKey(a), poolKey({ ...a, sslMode: "verify-full" }));
});

Deno.test("ServerPool bounds connections across databases", async (t) => {
  await using pg = await startPostgres();
  const cfg: ServerConfig = {
    host: pg.host,
    port: pg.port,
    user: pg.admin.user,
    password: pg.admin.password,
    sslMode: "disable",
    maxConnections: 3,
    applicationName: "dbtether-pool-test",
  };
  const dbs = ["d1", "d2", "d3", "d4", "d5"];
  for (const d of dbs) assert.equal((await pg.psql(`CREATE DATABASE ${d}`)).code, 0);
  const pool = new ServerPool(cfg);
  try {
    await t.step("queries run in the requested database", async () => {
      const rows = await pool.run((sql) => sql`SELECT current_database() AS db`, {
        database: "d2",
      });
      assert.equal(rows[0]?.db, "d2");
    });

    await t.step("30 concurrent queries over 5 databases never exceed 3 connections", async () => {
      let serverPeak = 0;
      const jobs = Array.from({ length: 30 }, (_, i) =>
        pool.run(async (sql) => {
          const [row] = await sql`
            SELECT current_database() AS db, count(*)::int AS n FROM pg_stat_activity
            WHERE application_name = 'dbtether-pool-test'`;
          serverPeak = Math.max(serverPeak, row?.n ?? 0);
          await sql`SELECT pg_sleep(0.02)`;
          return row?.db;
        }, { database: dbs[i % dbs.length]! }));
      const got = await Promise.all(jobs);
      assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => dbs[i % dbs.length]));
      assert.ok(pool.peakSlots <= 3, `peak slots ${pool.peakSlots}`);
      assert.ok(serverPeak <= 3, `server saw ${serverPeak}`);
    });

    await t.step("an aborted wait rejects without leaking the slot", async () => {
      const ac = new AbortController();
      const hold = Promise.withResolvers<void>();
      const holders = [1, 2, 3].map(() => pool.run(() => hold.promise));
      const waiting = pool.run(() => Promise.resolve(1), { signal: ac.signal });
      ac.abort(new Error("gave up"));
      await assert.rejects(waiting, /gave up/);
      hold.resolve();
      await Promise.all(holders);
      assert.equal(await pool.run(() => Promise.resolve(2)), 2);
    });
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.run(() => Promise.resolve(1)), /closed/);
});

Deno.test("PoolRegistry reuses a pool and rebuilds it when the password changes", async () => {
  await using pg = await startPostgres();
  const reg = new PoolRegistry();
  try {
    const cfg: ServerConfig = {
      host: pg.host,
      port: pg.port,
      user: pg.admin.user,
      password: pg.admin.password,
      sslMode: "disable",
    };
    const a = await reg.get(cfg);
    assert.equal(await reg.get({ ...cfg }), a);
    await a.run((sql) => sql`SELECT 1`);
    const b = await reg.get({ ...cfg, password: "wrong" });
    assert.notEqual(b, a);
    await assert.rejects(a.run((sql) => sql`SELECT 1`), /closed/);
    await assert.rejects(b.run((sql) => sql`SELECT 1`), /password authentication failed/);
    const c = await reg.get(cfg);
    assert.equal((await c.run((sql) => sql`SELECT 1 AS one`))[0]?.one, 1);
  } finally {
    await reg.close();
  }
});

async function sh(cmd: string, cwd: string): Promise<void> {
  const out = await new Deno.Command("bash", { args: ["-c", cmd], cwd, stderr: "piped" }).output();
  if (!out.success) throw new Error(`Cannot run ${cmd}: ${new TextDecoder().decode(out.stderr)}`);
}

// A CA, a server certificate for IP 127.0.0.1 signed by it, and an unrelated CA.
async function makeCerts(dir: string): Promise<void> {
  const subj = (cn: string) => `-subj /CN=${cn}`;
  await sh(
    [
      `openssl req -x509 -newkey rsa:2048 -nodes -days 1 ${
        subj("test-ca")
      } -keyout ca.key -out ca.crt`,
      `openssl req -x509 -newkey rsa:2048 -nodes -days 1 ${
        subj("other-ca")
      } -keyout o.key -out other.crt`,
      `openssl req -newkey rsa:2048 -nodes ${subj("pg")} -keyout server.key -out server.csr`,
      `printf 'subjectAltName=IP:127.0.0.1\\n' > ext`,
      `openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out server.crt`,
      `printf 'subjectAltName=DNS:db.example\\n' > ext2`,
      `openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile ext2 -out wrongname.crt`,
      "chmod 600 server.key",
      "if [ $(id -u) = 0 ]; then chown postgres server.key server.crt wrongname.crt; fi",
    ].join(" && "),
    dir,
  );
}

Deno.test("TLS modes: require, verify-ca and verify-full against a TLS server", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "dbtether-tls-" });
  try {
    await Deno.chmod(dir, 0o755);
    await makeCerts(dir);
    const ca = await Deno.readTextFile(`${dir}/ca.crt`);
    const other = await Deno.readTextFile(`${dir}/other.crt`);
    for (const cert of ["server.crt", "wrongname.crt"]) {
      await using pg = await startPostgres({
        extraConf: [
          "ssl = on",
          `ssl_cert_file = '${dir}/${cert}'`,
          `ssl_key_file = '${dir}/server.key'`,
        ],
      });
      const base: ServerConfig = {
        host: pg.host,
        port: pg.port,
        user: pg.admin.user,
        password: pg.admin.password,
        connectTimeoutSeconds: 5,
      };
      const tryMode = async (cfg: Partial<ServerConfig>): Promise<boolean | string> => {
        const pool = new ServerPool({ ...base, ...cfg });
        try {
          const [row] = await pool.run((sql) =>
            sql`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
          );
          return row?.ssl as boolean;
        } catch (e) {
          return (e as Error).message;
        } finally {
          await pool.close();
        }
      };
      const rightName = cert === "server.crt";
      await t.step(`${cert}: disable connects without TLS`, async () => {
        assert.equal(await tryMode({ sslMode: "disable" }), false);
      });
      await t.step(`${cert}: require connects with TLS, no verification`, async () => {
        assert.equal(await tryMode({ sslMode: "require" }), true);
      });
      await t.step(`${cert}: verify-ca accepts the right CA, rejects another`, async () => {
        assert.equal(await tryMode({ sslMode: "verify-ca", ca }), true);
        assert.notEqual(await tryMode({ sslMode: "verify-ca", ca: other }), true);
        assert.notEqual(await tryMode({ sslMode: "require", ca: other }), true);
      });
      await t.step(`${cert}: verify-full checks the name`, async () => {
        const got = await tryMode({ sslMode: "verify-full", ca });
        if (rightName) assert.equal(got, true);
        else assert.notEqual(got, true);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
