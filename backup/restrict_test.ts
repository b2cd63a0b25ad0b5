import { assert, assertEquals, assertThrows } from "../tests/helpers/assert.ts";
import { psqlHasRestrict, restrictedScript, RestrictFilter, restrictKey } from "./restrict.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The filter's output for `input` fed in pieces cut at `cuts`. */
function run(input: string, cuts: number[] = []): string {
  const bytes = enc.encode(input);
  const f = new RestrictFilter();
  const out: Uint8Array[] = [];
  const emit = (b: Uint8Array) => out.push(b.slice());
  let last = 0;
  for (const c of [...cuts, bytes.length]) {
    f.push(bytes.subarray(last, c), emit);
    last = c;
  }
  f.end(emit);
  return out.map((b) => dec.decode(b)).join("");
}

/** Every way of cutting `input` in two, and byte by byte. */
function everyCut(input: string): number[][] {
  const n = enc.encode(input).length;
  const cuts: number[][] = [[]];
  for (let i = 1; i < n; i++) cuts.push([i]);
  cuts.push(Array.from({ length: n - 1 }, (_, i) => i + 1));
  return cuts;
}

const HEAD = "--\n-- PostgreSQL database dump\n--\n\n";
const BODY = "SET x = 1;\nCOPY t (x) FROM stdin;\n\\\\restrict\n\\r\\n\n\\.\n\nSELECT 1;\n";
const TAIL = "\n--\n-- PostgreSQL database dump complete\n--\n\n";

Deno.test("the dump's own \\restrict and final \\unrestrict are dropped, nothing else", async (t) => {
  const cases: { name: string; input: string; want: string }[] = [
    {
      name: "a pg_dump 15.14+ dump",
      input: `${HEAD}\\restrict AbC123\n\n${BODY}${TAIL}\\unrestrict AbC123\n\n`,
      want: `${HEAD}\n${BODY}${TAIL}\n`,
    },
    {
      name: "an older dump without either",
      input: `${HEAD}${BODY}${TAIL}`,
      want: `${HEAD}${BODY}${TAIL}`,
    },
    {
      name: "\\restrict after the first command reaches psql",
      input: `SELECT 1;\n\\restrict AbC123\n`,
      want: `SELECT 1;\n\\restrict AbC123\n`,
    },
    {
      name: "a second \\restrict in the head reaches psql",
      input: `\\restrict A1\n\\restrict B2\nSELECT 1;\n`,
      want: `\\restrict B2\nSELECT 1;\n`,
    },
    {
      name: "\\unrestrict followed by a command reaches psql",
      input: `SELECT 1;\n\\unrestrict AbC123\nSELECT 2;\n`,
      want: `SELECT 1;\n\\unrestrict AbC123\nSELECT 2;\n`,
    },
    {
      name: "\\unrestrict inside COPY data followed by the terminator reaches psql",
      input: `COPY t FROM stdin;\n\\unrestrict AbC123\n\\.\n`,
      want: `COPY t FROM stdin;\n\\unrestrict AbC123\n\\.\n`,
    },
    {
      name: "a final \\unrestrict without newline",
      input: `SELECT 1;\n\\unrestrict AbC123`,
      want: `SELECT 1;\n`,
    },
    {
      name: "a meta-command that only looks like \\unrestrict reaches psql",
      input: `SELECT 1;\n\\unrestrictx AbC\n`,
      want: `SELECT 1;\n\\unrestrictx AbC\n`,
    },
    {
      name: "\\unrestrict with an extra argument reaches psql",
      input: `SELECT 1;\n\\unrestrict A \\! id\n`,
      want: `SELECT 1;\n\\unrestrict A \\! id\n`,
    },
    {
      name: "\\! anywhere reaches psql (which refuses it)",
      input: `${HEAD}\\! touch /tmp/x\nSELECT 1;\n\\! id\n`,
      want: `${HEAD}\\! touch /tmp/x\nSELECT 1;\n\\! id\n`,
    },
    {
      name: "CRLF line endings",
      input: `--\r\n\\restrict AbC\r\nSELECT 1;\r\n\\unrestrict AbC\r\n--\r\n`,
      want: `--\r\nSELECT 1;\r\n--\r\n`,
    },
    { name: "empty", input: "", want: "" },
    { name: "only comments", input: "-- a\n-- b", want: "-- a\n-- b" },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      for (const cuts of everyCut(c.input)) {
        assertEquals(run(c.input, cuts), c.want, `cut at ${cuts.join(",")}`);
      }
    });
  }
});

Deno.test("restrictedScript puts \\restrict <key> before the first byte of the dump", async () => {
  const key = restrictKey();
  assert(/^[A-Za-z0-9]{40}$/.test(key), key);
  const dump = new Blob([`\\restrict Theirs1\nSELECT 1;\n\\unrestrict Theirs1\n`]).stream();
  const out = await new Response(restrictedScript(dump, key)).text();
  assertEquals(out, `\\restrict ${key}\nSELECT 1;\n`);
  assertThrows(() => restrictedScript(new Blob([]).stream(), "short"), RangeError);
  assertThrows(() => restrictedScript(new Blob([]).stream(), "x".repeat(20) + "\n\\!"), RangeError);
});

Deno.test("keys are random", () => {
  const keys = new Set(Array.from({ length: 50 }, () => restrictKey()));
  assertEquals(keys.size, 50);
});

Deno.test("a large body passes through unchanged and in order", async () => {
  const line = "1\tsome data with \\N and \\\\ escapes\n";
  const body = "COPY t FROM stdin;\n" + line.repeat(50_000) + "\\.\n";
  const parts: Uint8Array[] = [];
  const bytes = enc.encode(body);
  for (let i = 0; i < bytes.length; i += 7919) parts.push(bytes.subarray(i, i + 7919));
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      const p = parts.shift();
      if (p) c.enqueue(p);
      else c.close();
    },
  });
  const out = await new Response(restrictedScript(stream, "K".repeat(20))).text();
  assertEquals(out, `\\restrict ${"K".repeat(20)}\n${body}`);
});

Deno.test("psqlHasRestrict reads psql's own help", async (t) => {
  await t.step("apt's psql 15.18 has it", async () => {
    const psql = "/usr/lib/postgresql/15/bin/psql";
    let present = false;
    try {
      present = (await Deno.stat(psql)).isFile;
    } catch {
      present = false;
    }
    if (present) assert(await psqlHasRestrict(psql));
  });
  await t.step("a psql without it, and no psql at all", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const old = `${dir}/psql`;
      await Deno.writeTextFile(old, "#!/bin/sh\necho '  \\\\watch [SEC]   execute query'\n");
      await Deno.chmod(old, 0o755);
      assertEquals(await psqlHasRestrict(old), false);
      assertEquals(await psqlHasRestrict(`${dir}/missing`), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
