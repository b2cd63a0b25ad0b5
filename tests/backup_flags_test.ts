/**
 * The backup flags of `dbtether run`: --backup-max-attempts and --backup-shutdown-grace parse
 * into the Config, are documented in --help, and bad values are one-line ConfigErrors.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "./helpers/assert.ts";
import { ConfigError, parseRunConfig, RUN_HELP } from "../config.ts";

const base = { args: [], env: {}, hostname: "test-host" };
const run = (...args: string[]) => parseRunConfig({ ...base, args });

Deno.test("backup flags: defaults, values and errors", async (t) => {
  await t.step("defaults: 3 attempts, no grace", () => {
    const c = run();
    assertEquals([c.backupMaxAttempts, c.backupShutdownGraceMs], [3, 0]);
  });
  await t.step("values", () => {
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

Deno.test("--backup-storage-retry-for", async (t) => {
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

Deno.test("--backup-gzip-workers", async (t) => {
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
