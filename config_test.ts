/**
 * `dbtether run`'s flags and environment parse into one frozen Config (config.ts): defaults,
 * values, and bad values as one-line ConfigErrors; --help documents the backup flags. Pure: no
 * program, no server.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "./tests/helpers/assert.ts";
import { ConfigError, parseRunConfig, RUN_HELP } from "./config.ts";

const base = { args: [], env: {}, hostname: "test-host" };
const run = (...args: string[]) => parseRunConfig({ ...base, args });

Deno.test("run flags parse into a frozen config", async (t) => {
  const base = { env: {}, hostname: "h" };
  await t.step(
    "defaults: 2 workers, no leader election, :8080 and :8081, every namespace; frozen",
    () => {
      const c = parseRunConfig({ ...base, args: [] });
      assertEquals([c.workers, c.leaderElect, c.metricsAddress, c.healthAddress, c.namespaces], [
        2,
        false,
        ":8080",
        ":8081",
        [],
      ]);
      assert(Object.isFrozen(c));
    },
  );
  await t.step(
    "workers, leader election, namespaces, lease duration, log format as given; the Lease in the pod's namespace",
    () => {
      const c = parseRunConfig({
        ...base,
        args: [
          "--workers",
          "4",
          "--leader-elect",
          "--namespaces",
          "a, b",
          "--lease-duration",
          "20s",
          "--log-format",
          "text",
        ],
        podNamespace: "ops",
      });
      assertEquals([
        c.workers,
        c.leaderElect,
        c.namespaces,
        c.leaseDurationMs,
        c.leaderElectionNamespace,
        c.logFormat,
      ], [
        4,
        true,
        ["a", "b"],
        20_000,
        "ops",
        "text",
      ]);
    },
  );
  await t.step("bad values are ConfigErrors that say which flag and why", () => {
    const bad: [string[], RegExp][] = [
      [["--workers", "0"], /Invalid --workers "0"/],
      [
        ["--log-level", "loud"],
        /Invalid --log-level "loud": expected one of debug, info, warn, error/,
      ],
      [["--lease-duration", "5s"], /lease-duration > --renew-deadline/],
      [["--graceful-shutdown-timeout", "soon"], /Invalid --graceful-shutdown-timeout "soon"/],
      [["--no-such-flag"], /Unknown option '--no-such-flag'/],
    ];
    for (const [args, re] of bad) {
      const e = assertThrows(
        () => parseRunConfig({ ...base, args }),
        undefined,
        undefined,
        `accepted ${args}`,
      );
      assert(e instanceof ConfigError && re.test(e.message), `${args}: ${e.message}`);
    }
  });
  await t.step("the backup signing Secret: default beside the Lease, or the flag", () => {
    const d = parseRunConfig({ ...base, args: [], podNamespace: "ops" });
    assertEquals(d.backupSigningSecret, { namespace: "ops", name: "dbtether-backup-signing" });
    const f = parseRunConfig({ ...base, args: ["--backup-signing-secret", "sec/keys.v2"] });
    assertEquals(f.backupSigningSecret, { namespace: "sec", name: "keys.v2" });
    for (const v of ["keys", "a/b/c", "A/b", "/x"]) {
      const e = assertThrows(
        () => parseRunConfig({ ...base, args: ["--backup-signing-secret", v] }),
        undefined,
        undefined,
        `accepted ${v}`,
      );
      assert(e instanceof ConfigError && /--backup-signing-secret/.test(e.message), v);
    }
  });
  await t.step(
    "PG_DB_OPERATOR_PASSWORD_ROTATION_INTERVAL_SECONDS sets the rotation; unset, none",
    () => {
      const c = parseRunConfig({
        ...base,
        args: [],
        env: { PG_DB_OPERATOR_PASSWORD_ROTATION_INTERVAL_SECONDS: "3600" },
      });
      assertEquals(c.postgresDatabase.rotationIntervalMs, 3_600_000);
      assertEquals(
        parseRunConfig({ ...base, args: [] }).postgresDatabase.rotationIntervalMs,
        undefined,
        "unset: no rotation",
      );
    },
  );
});

Deno.test("--backup-max-attempts and --backup-shutdown-grace: defaults, values, one-line errors, --help", async (t) => {
  await t.step("defaults: 3 attempts, no grace", () => {
    const c = run();
    assertEquals([c.backupMaxAttempts, c.backupShutdownGraceMs], [3, 0]);
  });
  await t.step("attempts and grace as given, = or a space", () => {
    const c = run("--backup-max-attempts", "5", "--backup-shutdown-grace", "20s");
    assertEquals([c.backupMaxAttempts, c.backupShutdownGraceMs], [5, 20_000]);
    const d = run(
      "--backup-max-attempts=1",
      "--backup-shutdown-grace=90s",
      "--graceful-shutdown-timeout=2m",
    );
    assertEquals([d.backupMaxAttempts, d.backupShutdownGraceMs], [1, 90_000]);
  });
  const bad: [string[], RegExp][] = [
    [["--backup-max-attempts", "0"], /^Invalid --backup-max-attempts "0": expected a whole/],
    [["--backup-max-attempts", "2.5"], /^Invalid --backup-max-attempts "2.5"/],
    [["--backup-max-attempts", "many"], /^Invalid --backup-max-attempts "many"/],
    [["--backup-shutdown-grace", "soon"], /^Invalid --backup-shutdown-grace "soon": use a/],
    [["--backup-shutdown-grace=-5s"], /^Invalid --backup-shutdown-grace "-5s"/],
    [
      ["--backup-shutdown-grace", "30s"],
      /^Invalid --backup-shutdown-grace "30s": it must be shorter than --graceful-shutdown-timeout \(30s\)$/,
    ],
    [
      ["--backup-shutdown-grace", "1m", "--graceful-shutdown-timeout", "45s"],
      /shorter than --graceful-shutdown-timeout \(45s\)/,
    ],
  ];
  for (const [args, want] of bad) {
    await t.step(`rejects ${args.join(" ")}`, () => {
      const e = assertThrows(() => run(...args), ConfigError);
      assert(want.test(e.message), e.message);
      assert(!e.message.includes("\n"), "one line");
    });
  }
  await t.step("--help documents both flags", () => {
    assert(/--backup-max-attempts N .*\(default 3\)/s.test(RUN_HELP), RUN_HELP);
    assert(/--backup-shutdown-grace DUR .*\(default 0s: abort at once\)/s.test(RUN_HELP));
  });
});

Deno.test("--backup-storage-retry-for: default 10m, any duration, one-line error, --help", async (t) => {
  await t.step("defaults to 10m; any duration, 0s for no retries", () => {
    assertEquals(run().backupStorageRetryForMs, 600_000);
    assertEquals(run("--backup-storage-retry-for", "40s").backupStorageRetryForMs, 40_000);
    assertEquals(run("--backup-storage-retry-for=2h").backupStorageRetryForMs, 7_200_000);
    assertEquals(run("--backup-storage-retry-for", "0s").backupStorageRetryForMs, 0);
  });
  await t.step("rejects what is not a duration, in one line", () => {
    const e = assertThrows(() => run("--backup-storage-retry-for", "forever"), ConfigError);
    assert(/^Invalid --backup-storage-retry-for "forever": use a duration/.test(e.message));
    assert(!e.message.includes("\n"), e.message);
  });
  await t.step("--help documents it", () => {
    assert(/--backup-storage-retry-for DUR .*\(default 10m; 0s: no retry\)/s.test(RUN_HELP));
  });
});

Deno.test("--backup-stall-timeout and --max-concurrent-backups-per-storage", async (t) => {
  await t.step("the stall timeout defaults to 60s, takes a duration of at least 1s", () => {
    assertEquals(run().backupStallTimeoutMs, 60_000);
    assertEquals(run("--backup-stall-timeout", "5s").backupStallTimeoutMs, 5_000);
    const e = assertThrows(() => run("--backup-stall-timeout", "0s"), ConfigError);
    assert(/^Invalid --backup-stall-timeout "0s": use at least 1s/.test(e.message), e.message);
  });
  await t.step("the per-storage limit is unset by default (the limiter's global − 1)", () => {
    assertEquals(run().maxConcurrentBackupsPerStorage, undefined);
    assertEquals(
      run("--max-concurrent-backups-per-storage", "2").maxConcurrentBackupsPerStorage,
      2,
    );
    assertThrows(() => run("--max-concurrent-backups-per-storage", "0"), ConfigError);
  });
  await t.step("--help documents both", () => {
    assert(/--backup-stall-timeout DUR .*StorageStalled.*\(default 60s\)/s.test(RUN_HELP));
    assert(/--max-concurrent-backups-per-storage N .*\(default: --max-concurrent-backups − 1/s
      .test(RUN_HELP));
  });
});

Deno.test("--backup-gzip-workers: default 2, 0 to 16, anything else refused", async (t) => {
  const run = (...args: string[]) => parseRunConfig({ args, env: {}, hostname: "h" });
  await t.step("defaults to 2 and accepts 0 (main thread) to 16", () => {
    assert(run().backupGzipWorkers === 2);
    assert(run("--backup-gzip-workers", "0").backupGzipWorkers === 0);
    assert(run("--backup-gzip-workers", "16").backupGzipWorkers === 16);
  });
  await t.step("rejects -1 in one line", () => {
    const e = assertThrows(() => run("--backup-gzip-workers=-1"));
    assert(e instanceof ConfigError && /--backup-gzip-workers/.test(e.message));
    assert(!e.message.includes("\n"), e.message);
  });
  for (const bad of ["17", "two"]) {
    await t.step(`rejects ${bad}`, () => {
      assertMatch(
        String(assertThrows(() => run("--backup-gzip-workers", bad))),
        /Invalid --backup-gzip-workers ".*": expected a whole number from 0 to 16/,
      );
    });
  }
});

Deno.test("--iam-token-refresh: default 10m, at most 14m (AWS tokens live 15m)", () => {
  assertEquals(run().iamTokenRefreshMs, 600_000);
  assertEquals(run("--iam-token-refresh", "15s").iamTokenRefreshMs, 15_000);
  const e = assertThrows(() => run("--iam-token-refresh", "15m"), ConfigError);
  assertMatch(e.message, /--iam-token-refresh "15m": it must be at most 14m/);
  assertThrows(() => run("--iam-token-refresh", "0s"), ConfigError);
  assert(RUN_HELP.includes("--iam-token-refresh DUR"));
});
