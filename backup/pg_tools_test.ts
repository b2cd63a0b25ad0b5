import { assertEquals, assertMatch, assertRejects } from "../tests/helpers/assert.ts";
import {
  chooseToolset,
  defaultToolDirs,
  findPgTools,
  noToolsetError,
  parseServerVersionNum,
  parseToolVersion,
  type PgToolset,
  refusedNote,
  ToolNotFoundError,
  ToolTooOldError,
} from "./pg_tools.ts";
import { StderrTail } from "./stderr_tail.ts";

Deno.test("parseToolVersion", () => {
  assertEquals(parseToolVersion("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"), {
    version: "15.18",
    major: 15,
  });
  assertEquals(parseToolVersion("pg_dump (PostgreSQL) 17beta1"), { version: "17", major: 17 });
  assertEquals(parseToolVersion("pg_dump (PostgreSQL) 9.6.24"), { version: "9.6.24", major: 9 });
  assertEquals(parseToolVersion("something else"), undefined);
});

Deno.test("parseServerVersionNum", () => {
  assertEquals(parseServerVersionNum(150018), { major: 15, version: "15.18" });
  assertEquals(parseServerVersionNum(170000), { major: 17, version: "17.0" });
  assertEquals(parseServerVersionNum(90624), { major: 9, version: "9.6.24" });
});

Deno.test("defaultToolDirs appends PATH after the Debian pattern", () => {
  assertEquals(defaultToolDirs("/usr/local/bin::/usr/bin"), [
    "/usr/lib/postgresql/*/bin",
    "/usr/local/bin",
    "/usr/bin",
  ]);
});

Deno.test("findPgTools picks the smallest major >= the server's", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "dbtether-tools-" });
  try {
    for (const v of ["14.9", "17.2", "16.4"]) {
      const dir = `${root}/pg/${v.split(".")[0]}/bin`;
      await Deno.mkdir(dir, { recursive: true });
      for (const tool of ["pg_dump", "psql", "pg_restore"]) {
        await Deno.writeTextFile(
          `${dir}/${tool}`,
          `#!/bin/sh\necho "${tool} (PostgreSQL) ${v}"\n`,
          { mode: 0o755 },
        );
      }
    }
    await Deno.remove(`${root}/pg/17/bin/pg_restore`);
    const dirs = [`${root}/pg/*/bin`, `${root}/nowhere`];
    const cases: [string, number, string][] = [
      ["older server uses the smallest newer tools", 13, "14.9"],
      ["exact match", 14, "14.9"],
      ["15 uses 16, not 17", 15, "16.4"],
      ["16 uses 16", 16, "16.4"],
      ["17 uses 17", 17, "17.2"],
    ];
    for (const [name, major, want] of cases) {
      await t.step(name, async () => {
        const got = await findPgTools({ major, version: `${major}.1` }, { dirs });
        assertEquals(got.version, want);
        assertEquals(got.pgDump, `${root}/pg/${want.split(".")[0]}/bin/pg_dump`);
      });
    }
    await t.step("a required tool missing beside pg_dump rules the directory out", async () => {
      await assertRejects(
        () => findPgTools({ major: 17, version: "17.1" }, { dirs, require: ["pgRestore"] }),
        ToolNotFoundError,
      );
    });
    await t.step(
      "only older tools: ToolTooOld names the versions and the directories",
      async () => {
        const e = await assertRejects(
          () => findPgTools({ major: 18, version: "18.0" }, { dirs }),
          ToolTooOldError,
        );
        for (const s of ["PostgreSQL 18.0", `${root}/pg/*/bin`, `${root}/nowhere`, "16.4 in"]) {
          if (!e.message.includes(s)) throw new Error(`"${s}" missing from: ${e.message}`);
        }
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

function toolset(version: string, dir = `/opt/pg${version}/bin`): PgToolset {
  const major = Number(version.split(".")[0]);
  return { dir, version, major, pgDump: `${dir}/pg_dump`, psql: "", pgRestore: "" };
}

Deno.test("chooseToolset: the smallest major >= the server's, the first among equals", async (t) => {
  const sets = [toolset("18.6"), toolset("14.23"), toolset("16.15", "/a"), toolset("16.2", "/b")];
  const cases: [string, number, PgToolset[], string | undefined][] = [
    ["an older server takes the smallest newer tools", 13, sets, "/opt/pg14.23/bin"],
    ["an exact match", 14, sets, "/opt/pg14.23/bin"],
    ["15 takes 16, not 18", 15, sets, "/a"],
    ["16 takes the first 16 found", 16, sets, "/a"],
    ["17 takes 18", 17, sets, "/opt/pg18.6/bin"],
    ["19: nothing", 19, sets, undefined],
    ["no tools: nothing", 13, [], undefined],
  ];
  for (const [name, major, given, want] of cases) {
    await t.step(name, () => assertEquals(chooseToolset(major, given)?.dir, want));
  }
});

Deno.test("noToolsetError: ToolTooOld only when every toolset found is older", async (t) => {
  const server = { major: 16, version: "16.15" };
  const dirs = ["/opt/*/bin"];
  await t.step("only older tools: which major, which found, and the flag", () => {
    const e = noToolsetError(server, { dirs, found: [toolset("14.23"), toolset("15.19")] });
    assertEquals(e instanceof ToolTooOldError, true);
    assertEquals(e.reason, "ToolTooOld");
    assertEquals(
      e.message,
      "Cannot use the client tools found for PostgreSQL 16.15: they must be of major 16 or " +
        "newer (pg_dump refuses a newer server), found only 14.23 in /opt/pg14.23/bin, 15.19 " +
        "in /opt/pg15.19/bin (searched " +
        "/opt/*/bin); install the PostgreSQL 16 (or newer) client tools and point " +
        "--pg-tools-dir at their bin directory",
    );
  });
  await t.step("the caller's hint replaces the flag", () => {
    const e = noToolsetError(server, { dirs, found: [toolset("14.23")], hint: "--tool-dir" });
    assertEquals(e.message.endsWith("point --tool-dir at their bin directory"), true);
  });
  await t.step("nothing found: ToolNotFound", () => {
    const e = noToolsetError(server, { dirs, found: [] });
    assertEquals([e instanceof ToolNotFoundError, e.reason], [true, "ToolNotFound"]);
    assertEquals(e.message.includes("(found: none)"), true);
  });
  await t.step("a new enough toolset lacking a required tool: ToolNotFound", () => {
    const e = noToolsetError(server, { dirs, found: [toolset("14.23"), toolset("17.2")] });
    assertEquals(e.reason, "ToolNotFound");
  });
});

Deno.test("StderrTail keeps the last lines, bounded and redacted", () => {
  const seen: string[] = [];
  const tail = new StderrTail({
    lines: 3,
    lineLength: 20,
    secrets: ["hunter2"],
    onLine: (l) => seen.push(l),
  });
  tail.push("one\ntwo\nthe password hunter2 leaked\npass");
  tail.push("word=abc def\n\n");
  tail.push("x".repeat(50));
  tail.end();
  assertEquals(tail.lines(), [
    "the password *** lea…",
    "password=*** def",
    "xxxxxxxxxxxxxxxxxxxx…",
  ]);
  assertEquals(seen.length, 5);
});

Deno.test("a tool the permissions forbid is named in the reason, not skipped in silence", () => {
  const server = { major: 18, version: "18.6" };
  const e = noToolsetError(server, { dirs: ["/x"], found: [], refused: ["/x/pg_dump"] });
  assertEquals(e.reason, "ToolNotFound");
  assertMatch(e.message, /found: none; not allowed to run \/x\/pg_dump: this binary/);
  assertEquals(refusedNote([]), "");
});
