/**
 * docs/metrics.md and the Grafana dashboard name the metrics the program really registers: every
 * `dbtether_*` name the code registers is documented, and every one the page or the dashboard's
 * queries use exists (histogram series `_bucket`, `_sum`, `_count` count as their histogram).
 * Pure: reads the sources and the docs as text.
 */
import { assertEquals } from "../tests/helpers/assert.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await sources(p));
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(p);
  }
  return out;
}

/** Metric names registered in the code: string literals "dbtether_..." (not templates). */
async function registered(): Promise<string[]> {
  const names = new Set<string>();
  for (const dir of ["controllers", "backup"]) {
    for (const f of await sources(dir)) {
      for (const m of (await Deno.readTextFile(`${ROOT}${f}`)).matchAll(/"(dbtether_[a-z_]+)"/g)) {
        names.add(m[1]!);
      }
    }
  }
  return [...names].sort();
}

const base = (n: string) => n.replace(/_(bucket|sum|count)$/, "");
const namesIn = (text: string) =>
  [...new Set([...text.matchAll(/dbtether_[a-z_]+/g)].map((m) => base(m[0])))].sort();

Deno.test("docs/metrics.md lists exactly the registered metrics", async () => {
  const page = await Deno.readTextFile(`${ROOT}docs/metrics.md`);
  const code = await registered();
  assertEquals(code.length > 10, true);
  const documented = namesIn(page.split("## Alerts")[0]!);
  assertEquals(documented, code);
  assertEquals(namesIn(page).filter((n) => !code.includes(n)), []);
});

Deno.test("the Grafana dashboard queries only registered metrics", async () => {
  const dash = JSON.parse(await Deno.readTextFile(`${ROOT}docs/grafana/dbtether.json`));
  const exprs: string[] = dash.panels.flatMap((p: { targets: { expr: string }[] }) =>
    p.targets.map((t) => t.expr)
  );
  const code = await registered();
  const used = namesIn(exprs.join("\n"));
  assertEquals(used.filter((n) => !code.includes(n)), []);
  // Every registered metric has a panel.
  assertEquals(code.filter((n) => !used.includes(n)), []);
});
