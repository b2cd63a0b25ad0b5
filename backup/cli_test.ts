import { assert, assertEquals, assertThrows } from "../tests/helpers/assert.ts";
import { backupCommand, type CliDeps, objectUrl, restoreCommand } from "./cli.ts";
import {
  connectionFrom,
  formatBytes,
  formatDuration,
  progressSink,
  UsageError,
} from "./cli_support.ts";
import { MemoryStore } from "../storage/memory.ts";

function fakeDeps(env: Record<string, string> = {}) {
  const dec = new TextDecoder();
  const out: string[] = [];
  const err: string[] = [];
  const deps: CliDeps = {
    env: { PGUSER: "admin", PGDATABASE: "orders", ...env },
    stdout: { writeSync: (p) => (out.push(dec.decode(p)), p.length), isTerminal: () => false },
    stderr: { writeSync: (p) => (err.push(dec.decode(p)), p.length) },
    signal: new AbortController().signal,
    makeStore: () => new MemoryStore(),
  };
  return { deps, out, err };
}

Deno.test("bad command lines exit 2 with one clear line and no stack trace", async (t) => {
  const cases: [string, (a: string[], d: CliDeps) => Promise<number>, string[], RegExp][] = [
    ["backup without --to", backupCommand, [], /Missing --to URL/],
    ["unknown flag", backupCommand, ["--to", "file:///tmp", "--bogus"], /bogus/],
    ["bad format", backupCommand, ["--to", "file:///tmp", "-F", "tar"], /Invalid format "tar"/],
    ["bad level", backupCommand, ["--to", "file:///tmp", "-Z", "11"], /invalid gzip level 11/],
    ["bad level text", backupCommand, ["--to", "file:///tmp", "-Z", "x"], /gzip level "x"/],
    [
      "zstd level 0",
      backupCommand,
      ["--to", "file:///tmp", "-C", "zstd", "-Z", "0"],
      /invalid zstd level 0 \(use 1 to 19\)/,
    ],
    ["bad codec", backupCommand, ["--to", "file:///tmp", "-C", "lz4"], /Invalid compression "lz4"/],
    ["bad URL", backupCommand, ["--to", "ftp://x/y"], /unsupported scheme/],
    [
      "unknown template variable",
      backupCommand,
      ["--to", "file:///tmp", "--filename-template", "{{ .Date }}.gz"],
      /unknown variable "\.Date"/,
    ],
    ["unsafe key", backupCommand, ["--to", "s3://b/p/", "--key", "../x"], /\.\./],
    ["bad port", backupCommand, ["--to", "file:///tmp", "-p", "99999"], /Invalid port/],
    ["restore without --from", restoreCommand, [], /Missing --from/],
    ["restore a bare bucket", restoreCommand, ["--from", "s3://bucket"], /names no object/],
    [
      "format with a manifest",
      restoreCommand,
      ["--from", "s3://b/k.sql.gz", "-F", "custom"],
      /only used with --no-manifest/,
    ],
    [
      "positional argument",
      restoreCommand,
      ["s3://b/k.sql.gz"],
      /Unexpected argument/,
    ],
  ];
  for (const [name, cmd, argv, re] of cases) {
    await t.step(name, async () => {
      const { deps, err } = fakeDeps();
      assertEquals(await cmd(argv, deps), 2);
      const text = err.join("");
      assert(re.test(text), `stderr: ${text}`);
      assertEquals(text.trim().split("\n").length, 1, `not one line: ${text}`);
      assert(!/\bat .*:\d+:\d+/.test(text), `stack trace: ${text}`);
    });
  }
  const { deps, err } = fakeDeps({ PGDATABASE: "" });
  delete deps.env.PGDATABASE;
  assertEquals(await backupCommand(["--to", "file:///tmp"], deps), 2);
  assert(err.join("").includes("No database"));
});

Deno.test("--help prints usage with examples and exits 0", async () => {
  for (const cmd of [backupCommand, restoreCommand]) {
    const { deps, out } = fakeDeps();
    assertEquals(await cmd(["--help"], deps), 0);
    assert(out.join("").includes("Examples:"));
  }
});

Deno.test("a missing backup is a runtime failure (exit 1) with the reason", async () => {
  const { deps, err } = fakeDeps({ PGHOST: "127.0.0.1" });
  assertEquals(await restoreCommand(["--from", "s3://b/p/", "--latest"], deps), 1);
  assert(err.join("").includes("[BackupNotFound]"), err.join(""));
});

Deno.test("connectionFrom: flags over libpq variables; password never from a flag", () => {
  const env = {
    PGHOST: "envhost",
    PGPORT: "5433",
    PGUSER: "envuser",
    PGDATABASE: "envdb",
    PGPASSWORD: "pw",
    PGSSLMODE: "require",
  };
  assertEquals(connectionFrom({}, env, () => ""), {
    host: "envhost",
    port: 5433,
    user: "envuser",
    database: "envdb",
    sslmode: "require",
    password: "pw",
  });
  const c = connectionFrom(
    { host: "h", username: "u", dbname: "d", "password-file": "/pw" },
    env,
    (p) => (p === "/pw" ? "from-file\nignored\n" : ""),
  );
  assertEquals([c.host, c.user, c.database, c.password], ["h", "u", "d", "from-file"]);
  assertEquals(
    connectionFrom({}, { ...env, PGPASSWORD: undefined, PGPASSFILE: "/p" }, () => "")
      .passfile,
    "/p",
  );
  assertThrows(() => connectionFrom({ sslmode: "maybe" }, env, () => ""), UsageError, "sslmode");
});

Deno.test("objectUrl splits object URLs", () => {
  assertEquals(objectUrl("s3://b/a/b/c.sql.gz", false), {
    location: { s3: { bucket: "b" } },
    key: "a/b/c.sql.gz",
    listPrefix: "a/b/c.sql.gz/",
  });
  assertEquals(objectUrl("file:///var/backups/x.sql.gz", false), {
    location: { local: { path: "/var/backups" } },
    key: "x.sql.gz",
    listPrefix: "",
  });
  assertEquals(objectUrl("file:///var/backups/orders", true).location, {
    local: { path: "/var/backups/orders" },
  });
});

Deno.test("formatting and progress output", () => {
  assertEquals(formatBytes(999), "999 B");
  assertEquals(formatBytes(1_234_567), "1.23 MB");
  assertEquals(formatBytes(45_600_000_000), "45.6 GB");
  assertEquals(formatDuration(3_723_000), "1:02:03");
  assertEquals(formatDuration(59_000), "0:59");
  const lines: string[] = [];
  const json = progressSink((s) => lines.push(s), {
    terminal: false,
    verb: "backup",
    labels: ["dumped", "stored"],
  });
  json.progress({ read: 2000, written: 500, elapsedMs: 1000 });
  json.done({ key: "k" }, "ignored");
  assertEquals(lines.map((l) => JSON.parse(l)), [
    {
      event: "progress",
      operation: "backup",
      bytesRead: 2000,
      bytesWritten: 500,
      bytesPerSecond: 2000,
      elapsedMs: 1000,
    },
    { event: "completed", operation: "backup", key: "k" },
  ]);
  const tty: string[] = [];
  const bar = progressSink((s) => tty.push(s), {
    terminal: true,
    verb: "backup",
    labels: ["dumped", "stored"],
  });
  bar.progress({ read: 2_000_000, written: 500_000, elapsedMs: 2000 });
  bar.done({}, "Done");
  assert(tty[0]!.startsWith("\r") && tty[0]!.includes("1.00 MB/s") && tty[0]!.includes("0:02"));
  assertEquals(tty[1], "\r\x1b[2KDone\n");
});
