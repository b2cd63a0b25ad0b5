import { assertEquals, assertRejects } from "../tests/helpers/assert.ts";
import {
  defaultToolDirs,
  findPgTools,
  parseServerVersionNum,
  parseToolVersion,
  ToolNotFoundError,
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
    await t.step("the error names the server version and the directories", async () => {
      const e = await assertRejects(
        () => findPgTools({ major: 18, version: "18.0" }, { dirs }),
        ToolNotFoundError,
      );
      for (const s of ["PostgreSQL 18.0", `${root}/pg/*/bin`, `${root}/nowhere`, "16.4 in"]) {
        if (!e.message.includes(s)) throw new Error(`"${s}" missing from: ${e.message}`);
      }
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
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
