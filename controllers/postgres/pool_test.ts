import {
  assert,
  assertEquals,
  assertMatch,
  assertNotStrictEquals,
  assertRejects,
  assertStrictEquals,
} from "../../tests/helpers/assert.ts";
import { type PgServer, startPostgres } from "../../tests/helpers/postgres.ts";
import { FakeClock } from "../../lib/clock.ts";
import { LeadershipLostError, LeaseFence } from "../../lib/fence.ts";
import { type ServerConfig, ServerPool, tlsOptions } from "./pool.ts";
import { PoolRegistry, sessionName } from "./registry.ts";
import { startHangingListener } from "../../tests/verify/hang.ts";
import { budget } from "../../tests/helpers/timeouts.ts";
import { waitFor } from "../../tests/helpers/wait.ts";

/** The test server's non-superuser admin, without TLS. */
function admin(pg: PgServer): ServerConfig {
  return {
    host: pg.host,
    port: pg.port,
    user: pg.admin.user,
    password: pg.admin.password,
    sslMode: "disable",
  };
}

Deno.test("tlsOptions maps libpq modes", () => {
  assertStrictEquals(tlsOptions("disable"), false);
  assertStrictEquals(tlsOptions("require"), "require");
  const ca = tlsOptions("require", { ca: "PEM" }) as Record<string, unknown>;
  assertStrictEquals(ca.rejectUnauthorized, true);
  assertStrictEquals(typeof ca.checkServerIdentity, "function");
  assertEquals(tlsOptions("verify-full"), { rejectUnauthorized: true });
  assertEquals(tlsOptions("verify-full", { ca: "PEM" }), {
    rejectUnauthorized: true,
    ca: "PEM",
  });
});

Deno.test("sessionName keeps the replica's tag and fits in 63 bytes", async (t) => {
  const cases: { name: string; tag: string; owner: string; want: string }[] = [
    {
      name: "short",
      tag: "dbtether@pod-1_ab",
      owner: "DBCluster/a",
      want: "dbtether@pod-1_ab/DBCluster/a",
    },
    {
      name: "a long owner is cut at the end",
      tag: "dbtether@pod-1_ab",
      owner: `DBCluster/${"x".repeat(80)}`,
      want: `dbtether@pod-1_ab/DBCluster/${"x".repeat(35)}`,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const got = sessionName(c.tag, c.owner);
      assertStrictEquals(got, c.want);
      assert(new TextEncoder().encode(got).length <= 63);
    });
  }
});

Deno.test("ServerPool bounds connections across databases", async (t) => {
  await using pg = await startPostgres();
  const cfg: ServerConfig = {
    ...admin(pg),
    maxConnections: 3,
    applicationName: "dbtether-pool-test",
  };
  const dbs = ["d1", "d2", "d3", "d4", "d5"];
  for (const d of dbs) assertStrictEquals((await pg.psql(`CREATE DATABASE ${d}`)).code, 0);
  const pool = new ServerPool(cfg);
  try {
    await t.step("queries run in the requested database", async () => {
      const rows = await pool.run((sql) => sql`SELECT current_database() AS db`, {
        database: "d2",
      });
      assertStrictEquals(rows[0]?.db, "d2");
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
      assertEquals(got, Array.from({ length: 30 }, (_, i) => dbs[i % dbs.length]));
      assert(pool.peakSlots <= 3, `peak slots ${pool.peakSlots}`);
      assert(serverPeak <= 3, `server saw ${serverPeak}`);
    });

    await t.step("closeIdle closes the idle sessions of the named databases only", async () => {
      const sessions = async (db: string) => {
        const rows = await pool.run((sql) =>
          sql<{ n: number }[]>`
            SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE application_name = 'dbtether-pool-test' AND datname = ${db}`, { database: "d1" });
        return rows[0]?.n;
      };
      await pool.run((sql) => sql`SELECT 1`, { database: "d4" });
      assertStrictEquals(await sessions("d4"), 1);
      await pool.closeIdle(["d4", "no-such-database"]);
      assertStrictEquals(await sessions("d4"), 0);
      assertStrictEquals(await sessions("d1"), 1, "the other database's session stays");
      const rows = await pool.run((sql) => sql`SELECT current_database() AS db`, {
        database: "d4",
      });
      assertStrictEquals(rows[0]?.db, "d4", "the next run opens a new session");
    });

    await t.step("an aborted wait rejects without leaking the slot", async () => {
      const ac = new AbortController();
      const hold = Promise.withResolvers<void>();
      const holders = [1, 2, 3].map(() => pool.run(() => hold.promise));
      const waiting = pool.run(() => Promise.resolve(1), { signal: ac.signal });
      ac.abort(new Error("gave up"));
      await assertRejects(() => waiting, Error, "gave up");
      hold.resolve();
      await Promise.all(holders);
      assertStrictEquals(await pool.run(() => Promise.resolve(2)), 2);
    });
  } finally {
    await pool.close();
  }
  await assertRejects(() => pool.run(() => Promise.resolve(1)), Error, "closed");
});

Deno.test("PoolRegistry: one pool per owner, rebuilt only when that owner's settings change", async (t) => {
  await using pg = await startPostgres();
  const reg = new PoolRegistry({ applicationName: "dbtether@reg-test" });
  try {
    const cfg: ServerConfig = admin(pg);
    await t.step("the same settings reuse the pool; a new password rebuilds it", async () => {
      const a = await reg.get(cfg, { owner: "DBCluster/one" });
      assertStrictEquals(await reg.get({ ...cfg }, { owner: "DBCluster/one" }), a);
      await a.run((sql) => sql`SELECT 1`);
      const b = await reg.get({ ...cfg, password: "wrong" }, { owner: "DBCluster/one" });
      assertNotStrictEquals(b, a);
      await assertRejects(() => a.run((sql) => sql`SELECT 1`), Error, "closed");
      await assertRejects(
        () => b.run((sql) => sql`SELECT 1`),
        Error,
        "password authentication failed",
      );
      const c = await reg.get(cfg, { owner: "DBCluster/one" });
      assertStrictEquals((await c.run((sql) => sql`SELECT 1 AS one`))[0]?.one, 1);
    });

    await t.step("two owners on one server with different bounds keep their pools", async () => {
      const small = { ...cfg, maxConnections: 1 };
      const large = { ...cfg, maxConnections: 3 };
      const p1 = await reg.get(small, { owner: "DBCluster/small" });
      const p2 = await reg.get(large, { owner: "DBCluster/large" });
      for (let i = 0; i < 10; i++) {
        assertStrictEquals(await reg.get({ ...small }, { owner: "DBCluster/small" }), p1);
        assertStrictEquals(await reg.get({ ...large }, { owner: "DBCluster/large" }), p2);
      }
      const peak = { small: 0, large: 0 };
      const probe = (pool: ServerPool) =>
        pool.run(async (sql) => {
          const rows = await sql<{ app: string; n: number }[]>`
            SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity
            WHERE application_name LIKE 'dbtether@reg-test/%' GROUP BY 1`;
          for (const r of rows) {
            if (r.app.endsWith("/small")) peak.small = Math.max(peak.small, r.n);
            if (r.app.endsWith("/large")) peak.large = Math.max(peak.large, r.n);
          }
          await sql`SELECT pg_sleep(0.05)`;
        });
      await Promise.all(Array.from({ length: 12 }, (_, i) => probe(i % 2 ? p1 : p2)));
      assert(p1.peakSlots <= 1 && p2.peakSlots <= 3, `${p1.peakSlots} ${p2.peakSlots}`);
      assertStrictEquals(peak.small, 1, "the small pool's sessions, by application_name");
      assert(peak.large >= 2 && peak.large <= 3, `the large pool's sessions: ${peak.large}`);
    });
  } finally {
    await reg.close();
  }
});

Deno.test("ServerPool: every statement passes the fence, in-flight ones are cancelled", async (t) => {
  await using pg = await startPostgres();
  const server: ServerConfig = admin(pg);
  const leaseFence = () => {
    const clock = new FakeClock();
    return {
      clock,
      fence: new LeaseFence({ clock, validForMs: 10_000, monotonic: () => clock.now() }),
    };
  };
  const { clock, fence } = leaseFence();
  const pool = new ServerPool(server, { fence, applicationName: "dbtether-fence-test" });
  const count = async () =>
    (await pg.superSql("SELECT count(*) FROM fenced", { database: "fence_db" })).trim();
  const running = (what: string) =>
    pg.superSql(
      `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbtether-fence-test' ` +
        `AND state = 'active' AND query LIKE '%${what}%'`,
    ).then((s) => Number(s.trim()));
  try {
    await t.step("a standby's fence refuses statements", async () => {
      await assertRejects(() => pool.run((sql) => sql`SELECT 1`), LeadershipLostError);
    });
    fence.renewed(fence.stamp());

    await t.step("an open fence lets statements and transactions through", async () => {
      await pool.run((sql) => sql.unsafe("CREATE DATABASE fence_db"));
      await pool.run(async (sql) => {
        await sql.unsafe("CREATE TABLE public.fenced (id int)");
        await sql.begin(async (tx) => {
          await tx.unsafe("INSERT INTO public.fenced VALUES (1)");
        });
      }, { database: "fence_db" });
      assertStrictEquals(await count(), "1");
    });

    await t.step("a transaction the fence closes on before COMMIT rolls back", async () => {
      const err = await pool.run((sql) =>
        sql.begin(async (tx) => {
          await tx.unsafe("INSERT INTO public.fenced VALUES (2)");
          clock.advance(10_000); // frozen past the renew deadline, then resumed
          await tx.unsafe("INSERT INTO public.fenced VALUES (3)").catch(() => {});
        }), { database: "fence_db" }).catch((e) => e);
      assert(err instanceof LeadershipLostError, String(err));
      assertStrictEquals(await count(), "1");
      const log = await pg.readLog();
      assert(!log.includes("VALUES (3)"), "nothing was sent after the fence closed");
    });

    await t.step("a closed fence refuses every later statement", async () => {
      await assertRejects(() => pool.run((sql) => sql`SELECT 1`), LeadershipLostError);
    });
  } finally {
    await pool.close();
  }

  await t.step("statements in flight are cancelled when the fence closes", async () => {
    const { clock: clock2, fence: f2 } = leaseFence();
    f2.renewed(f2.stamp());
    const p = new ServerPool(server, { fence: f2, applicationName: "dbtether-fence-test" });
    try {
      const sleeping = p.run((sql) => sql`SELECT pg_sleep(120)`).catch((e) => e);
      await waitUntil(async () => (await running("pg_sleep(120)")) === 1);
      clock2.advance(10_000);
      const err = await sleeping;
      assert(err instanceof LeadershipLostError, String(err));
      await waitUntil(async () => (await running("pg_sleep(120)")) === 0);
    } finally {
      await p.close();
    }
  });

  await t.step("a run's own signal cancels its statement on the server", async () => {
    const p = new ServerPool(server, { applicationName: "dbtether-fence-test" });
    try {
      const ac = new AbortController();
      const sleeping = p.run((sql) => sql`SELECT pg_sleep(121)`, { signal: ac.signal })
        .catch((e) => e);
      await waitUntil(async () => (await running("pg_sleep(121)")) === 1);
      ac.abort(new Error("gave up"));
      assertMatch(String(await sleeping), /gave up/);
      await waitUntil(async () => (await running("pg_sleep(121)")) === 0);
    } finally {
      await p.close();
    }
  });
});

async function waitUntil(f: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("Timed out");
}

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
        assertStrictEquals(await tryMode({ sslMode: "disable" }), false);
      });
      await t.step(`${cert}: require connects with TLS, no verification`, async () => {
        assertStrictEquals(await tryMode({ sslMode: "require" }), true);
      });
      await t.step(`${cert}: verify-ca accepts the right CA, rejects another`, async () => {
        assertStrictEquals(await tryMode({ sslMode: "verify-ca", ca }), true);
        assertNotStrictEquals(await tryMode({ sslMode: "verify-ca", ca: other }), true);
        assertNotStrictEquals(await tryMode({ sslMode: "require", ca: other }), true);
      });
      await t.step(`${cert}: verify-full checks the name`, async () => {
        const got = await tryMode({ sslMode: "verify-full", ca });
        if (rightName) assertStrictEquals(got, true);
        else assertNotStrictEquals(got, true);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ServerPool: with leader election the server ends our idle sessions", async (t) => {
  await using pg = await startPostgres();
  const pool = new ServerPool(admin(pg), {
    sessionIdleLimitMs: 800,
    applicationName: "dbtether-limit-test",
  });
  const show = (name: string) =>
    pool.run((sql) => sql.unsafe(`SHOW ${name}`)).then((r) => Object.values(r[0]!)[0]);
  try {
    await t.step("idle in a transaction: limited on every server", async () => {
      assertStrictEquals(await show("idle_in_transaction_session_timeout"), "800ms");
    });
    await t.step("idle outside one: limited once the server is known to be ≥ 14", async () => {
      if (Number(pg.version.split(".")[0]) < 14) {
        // PostgreSQL 13 has no such setting: the pool must not send it (the session would fail).
        await assertRejects(() => show("idle_session_timeout"), Error, "unrecognized");
        assertStrictEquals(await show("application_name"), "dbtether-limit-test");
        return;
      }
      // The first slot was opened before the version was known; it is replaced.
      assertStrictEquals(await show("idle_session_timeout"), "800ms");
      assertStrictEquals(await show("idle_session_timeout"), "800ms");
    });
    await t.step(
      "a statement never reconnects: a connection closed mid-run fails the run",
      async () => {
        const err = await pool.run(async (sql) => {
          await sql`SELECT 1`;
          await new Promise((r) => setTimeout(r, 1500)); // past both limits
          await sql`SELECT 'after the gap'`;
        }).catch((e) => e);
        assertMatch(String(err), /connection closed during the run/);
        assert(!(await pg.readLog()).includes("after the gap"), "it was not sent");
        assertStrictEquals(
          await show("application_name"),
          "dbtether-limit-test",
          "the next run works",
        );
      },
    );
  } finally {
    await pool.close();
  }
});

Deno.test("ServerPool: a server that never answers costs a run the patience, one connect at a time", async () => {
  await using hang = startHangingListener();
  const pool = new ServerPool({
    host: hang.host,
    port: hang.port,
    user: "nobody",
    password: "never-sent",
    sslMode: "disable",
    connectTimeoutSeconds: 4,
  });
  try {
    // Three runs at once: each gives up after the patience (2 s), while the one connect the
    // pool made goes on without them.
    const runs = [0, 1, 2].map(() => pool.run(() => Promise.resolve(1)).then(() => "", String));
    const errors = await Promise.all(runs);
    for (const e of errors) assertMatch(e, /no answer within 2s, the connection attempt goes on/);
    assertEquals(hang.accepted(), 1, "one connect at a time to an unproven server");
    // Once that connect timed out, runs fail at once with its error (the hold-off).
    const after = await waitFor("the connect timed out", async () => {
      const e = await pool.run(() => Promise.resolve(1)).then(() => "", String);
      return /no answer within/.test(e) ? undefined : e;
    }, { timeoutMs: budget("react") });
    assertMatch(after, /CONNECT_TIMEOUT|timeout/i);
    assertEquals(hang.accepted(), 1, "no connect during the hold-off");
  } finally {
    await pool.close(0);
  }
});
