/**
 * The Makefile keeps its promises: `make help` names every .PHONY target (and every target is
 * .PHONY), and `make unit` runs every test that sits beside its module except those that start
 * a server other than PostgreSQL, which `make test` runs with the integration tests. Pure: reads
 * the Makefile and the test files as text.
 */
import { assertEquals } from "../tests/helpers/assert.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAKEFILE = await Deno.readTextFile(`${ROOT}Makefile`);

/** The Makefile with backslash-continued lines joined. */
function logicalLines(text: string): string[] {
  return text.replace(/\\\n/g, " ").split("\n");
}

/** The targets of the `.PHONY:` line. */
function phonyTargets(text: string): string[] {
  const line = logicalLines(text).find((l) => l.startsWith(".PHONY:")) ?? "";
  return line.slice(".PHONY:".length).trim().split(/\s+/).filter(Boolean).sort();
}

/** The targets that have a rule (`name:` at the start of a line, not `NAME :=`). */
function ruleTargets(text: string): string[] {
  return logicalLines(text)
    .map((l) => /^([a-z][a-z0-9-]*):(?!=)/.exec(l)?.[1])
    .filter((t): t is string => t !== undefined)
    .sort();
}

/** The targets `make help` names: each of its `@echo "make <target> ..."` lines. */
function helpTargets(text: string): string[] {
  const lines = logicalLines(text);
  const start = lines.indexOf("help:");
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith("\t")) break;
    const m = /^\t@echo "make ([a-z][a-z0-9-]*)\s/.exec(l);
    if (m) out.push(m[1]!);
  }
  return out.sort();
}

/** The paths `make unit` hands to `deno test` (files or folders). */
function unitPaths(text: string): string[] {
  const line = logicalLines(text).find((l) => l.startsWith("UNIT_TESTS :=")) ?? "";
  return line.slice("UNIT_TESTS :=".length).trim().split(/\s+/).filter(Boolean);
}

/** Every `*_test.ts` outside tests/ (the integration tests), relative to the root. */
async function testsBesideModules(dir = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
    const path = `${dir}${e.name}`;
    if (e.name.startsWith(".") || ["node_modules", "tests", "bench"].includes(path)) continue;
    if (e.isDirectory) out.push(...await testsBesideModules(`${path}/`));
    else if (e.name.endsWith("_test.ts")) out.push(path);
  }
  return out.sort();
}

// What makes a test need more than a throwaway PostgreSQL: the apiserver, the program, or a
// storage server (tests/helpers/{env,kube,program,storage_servers}.ts).
const SERVERS =
  /\b(startEnv|startKube|startProgram|runProgram|startMinio|startAzurite|startFakeGcs)\(/;

Deno.test("make help names every .PHONY target, and every target is .PHONY", () => {
  assertEquals(helpTargets(MAKEFILE), phonyTargets(MAKEFILE), "make help vs .PHONY");
  assertEquals(ruleTargets(MAKEFILE), phonyTargets(MAKEFILE), "rules vs .PHONY");
});

Deno.test("make unit runs every test beside its module that needs no server but PostgreSQL", async () => {
  const paths = unitPaths(MAKEFILE);
  const inUnit = (f: string) => paths.some((p) => f === p || f.startsWith(`${p}/`));
  const needsServers: string[] = [];
  const missing: string[] = [];
  for (const f of await testsBesideModules()) {
    const servers = SERVERS.test(await Deno.readTextFile(`${ROOT}${f}`));
    if (inUnit(f) && servers) needsServers.push(f);
    if (!inUnit(f) && !servers) missing.push(f);
  }
  assertEquals(missing, [], "pure tests make unit does not run (add them to UNIT_TESTS)");
  assertEquals(needsServers, [], "tests in make unit that start servers");
});
