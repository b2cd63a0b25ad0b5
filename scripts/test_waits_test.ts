/**
 * Integration tests wait with the one table of budgets (tests/helpers/timeouts.ts): a literal
 * `timeoutMs: 30_000` in a test is a wait nobody can scale for a slow machine, and the place a
 * flake on a loaded CI box starts. Pure: reads the test files as text.
 */
import { assert, assertEquals } from "../tests/helpers/assert.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** `timeoutMs:` or a deadline computed from a number, anywhere but in a comment line. */
const LITERAL_WAIT = /\btimeoutMs:\s*[0-9]|\bdeadline = Date\.now\(\) \+ [0-9]/;

/** The lines of `text` that wait with a literal number, as `file:line: text`. */
export function literalWaits(file: string, text: string): string[] {
  return text.split("\n").flatMap((line, i) =>
    LITERAL_WAIT.test(line) && !/^\s*(\/\/|\*)/.test(line)
      ? [`${file}:${i + 1}: ${line.trim()}`]
      : []
  );
}

async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await testFiles(path));
    else if (e.name.endsWith(".ts") && path !== "tests/helpers/timeouts.ts") out.push(path);
  }
  return out;
}

Deno.test("integration tests wait with the budgets of tests/helpers/timeouts.ts", async () => {
  const found: string[] = [];
  for (const f of (await testFiles("tests")).sort()) {
    found.push(...literalWaits(f, await Deno.readTextFile(`${ROOT}${f}`)));
  }
  assertEquals(found, [], 'use budget("react" | "ready" | …) instead of a number');
});

Deno.test("the check sees a literal wait and ignores a budget or a comment", () => {
  assertEquals(literalWaits("x.ts", "  await waitFor(a, f, { timeoutMs: 20_000 });").length, 1);
  assertEquals(literalWaits("x.ts", '  await waitFor(a, f, { timeoutMs: budget("react") });'), []);
  assert(literalWaits("x.ts", "  // { timeoutMs: 5 } was too short").length === 0);
});
