/**
 * `make lint`'s import check: every import of our own code points down the layers below, no
 * module imports itself through others (no cycles), and nothing that ships in the binary
 * imports `tests/`. Reads the sources as text; prints each violation with the rule it breaks and
 * exits 1 when there is one.
 *
 *   deno task lint:imports   (deno run --allow-read --allow-run scripts/check_imports.ts)
 *
 * The layers, top to bottom (a module may import its own layer and any layer below):
 *
 *   main.ts, config.ts                 the composition root and its flags
 *   controllers/register.ts, cli/      wires the controllers; the commands that use several kinds
 *   controllers/<kind>/                one folder per kind; never another kind's folder
 *   controllers/services/              what several kinds share: DBCluster resolution
 *   crds/                              the schemas and the types of the kinds (they may read
 *                                      the engine's lists, e.g. backup template variables)
 *   controllers/runtime/               informers, queues, leader election, status helpers
 *   controllers/postgres/              the one module that builds SQL
 *   backup/                            the streaming engine
 *   storage/                           the storage backends
 *   lib/                               what everything uses; imports nothing of ours
 *
 * Tests (`*_test.ts`, `tests/`), `scripts/` and `bench/` may import anything; only they may
 * import `tests/`.
 */

/** A layer: its name, which files belong to it, and the layers it may import. */
interface Layer {
  name: string;
  match: (path: string) => boolean;
  may: readonly string[];
}

const LEAF = ["lib"];
const ENGINE = ["storage", ...LEAF];
const LAYERS: readonly Layer[] = [
  { name: "lib", match: (p) => p.startsWith("lib/"), may: LEAF },
  { name: "storage", match: (p) => p.startsWith("storage/"), may: ENGINE },
  { name: "backup", match: (p) => p.startsWith("backup/"), may: ["backup", ...ENGINE] },
  {
    name: "postgres",
    match: (p) => p.startsWith("controllers/postgres/"),
    may: ["postgres", ...LEAF],
  },
  {
    name: "runtime",
    match: (p) => p.startsWith("controllers/runtime/"),
    may: ["runtime", ...LEAF],
  },
  {
    name: "crds",
    match: (p) => p.startsWith("crds/"),
    may: ["crds", "runtime", "postgres", "backup", ...ENGINE],
  },
  {
    name: "services",
    match: (p) => p.startsWith("controllers/services/"),
    may: ["services", "crds", "runtime", "postgres", "backup", ...ENGINE],
  },
  {
    name: "kind",
    match: (p) => /^controllers\/[a-z_]+\//.test(p),
    may: ["kind", "services", "crds", "runtime", "postgres", "backup", ...ENGINE],
  },
  {
    name: "register",
    match: (p) => p === "controllers/register.ts",
    may: ["kind", "services", "crds", "runtime", "postgres", "backup", ...ENGINE],
  },
  {
    // Commands that use several kinds' planners (dbtether plan): beside register.ts.
    name: "cli",
    match: (p) => p.startsWith("cli/"),
    may: ["cli", "kind", "services", "crds", "runtime", "postgres", "backup", ...ENGINE],
  },
  {
    name: "root",
    match: (p) => ["main.ts", "config.ts", "version.ts"].includes(p),
    may: [
      "root",
      "register",
      "cli",
      "kind",
      "services",
      "crds",
      "runtime",
      "postgres",
      "backup",
      ...ENGINE,
    ],
  },
];

// `*_test_util.ts`: fixtures only the tests beside them import (shipping code may not).
const isTest = (p: string) =>
  p.endsWith("_test.ts") || p.endsWith("_test_util.ts") || p.startsWith("tests/") ||
  p.startsWith("scripts/") || p.startsWith("bench/");

function layerOf(path: string): Layer | undefined {
  // Most specific first: the kind matcher also matches runtime/postgres/services.
  for (const name of ["runtime", "postgres", "services", "register"]) {
    const l = LAYERS.find((x) => x.name === name)!;
    if (l.match(path)) return l;
  }
  return LAYERS.find((l) => l.match(path));
}

/** The folder of a kind module (`controllers/database/`), for the no-kind-to-kind rule. */
function kindFolder(path: string): string | undefined {
  const m = /^controllers\/([a-z_]+)\//.exec(path);
  if (!m || ["runtime", "postgres", "services"].includes(m[1]!)) return undefined;
  return m[1];
}

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/g;
const BARE = /(?:^|[\s;])import\s*["']([^"']+)["']/g;
const DYNAMIC = /import\(\s*["']([^"']+)["']\s*\)/g;

/** The relative imports of a source text, comments removed first. */
export function importsOf(text: string): string[] {
  const code = text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .split("\n")
    .filter((l) => !/^\s*\/\//.test(l))
    .join("\n");
  const out = new Set<string>();
  for (const re of [IMPORT, BARE, DYNAMIC]) {
    for (const m of code.matchAll(re)) if (m[1]!.startsWith(".")) out.add(m[1]!);
  }
  return [...out];
}

function resolve(from: string, spec: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const seg of spec.split("/")) {
    if (seg === "..") parts.pop();
    else if (seg !== ".") parts.push(seg);
  }
  return parts.join("/");
}

/** One broken rule. */
export interface Violation {
  file: string;
  imports: string;
  rule: string;
}

/** Checks a set of files (path → source text). Pure. */
export function checkImports(files: ReadonlyMap<string, string>): Violation[] {
  const out: Violation[] = [];
  const graph = new Map<string, string[]>();
  for (const [file, text] of files) {
    const deps = importsOf(text).map((s) => resolve(file, s)).filter((d) => d.endsWith(".ts"));
    graph.set(file, deps);
    if (isTest(file)) continue;
    const from = layerOf(file);
    for (const dep of deps) {
      if (isTest(dep)) {
        out.push({
          file,
          imports: dep,
          rule: "code that ships must not import tests/, *_test.ts or *_test_util.ts",
        });
        continue;
      }
      const to = layerOf(dep);
      if (!from || !to) continue;
      if (!from.may.includes(to.name)) {
        out.push({
          file,
          imports: dep,
          rule: `${from.name} may import only ${from.may.join(", ")} (not ${to.name})`,
        });
      } else if (
        from.name === "kind" && to.name === "kind" && kindFolder(file) !== kindFolder(dep)
      ) {
        out.push({
          file,
          imports: dep,
          rule: "a kind's folder must not import another kind's (share it through services/)",
        });
      }
    }
  }
  for (const cycle of cycles(graph)) {
    out.push({ file: cycle[0]!, imports: cycle.slice(1).join(" → "), rule: "import cycle" });
  }
  return out;
}

/** Strongly connected components of more than one file (Tarjan), each as a list of files. */
function cycles(graph: ReadonlyMap<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      for (let w = stack.pop()!;; w = stack.pop()!) {
        on.delete(w);
        scc.push(w);
        if (w === v) break;
      }
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

if (import.meta.main) {
  const ls = await new Deno.Command("git", {
    args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.ts"],
    stdout: "piped",
  }).output();
  const files = new Map<string, string>();
  for (const f of new TextDecoder().decode(ls.stdout).split("\0").filter(Boolean)) {
    try {
      files.set(f, await Deno.readTextFile(f));
    } catch {
      // deleted in the work tree
    }
  }
  const violations = checkImports(files);
  for (const v of violations) console.log(`${v.file} imports ${v.imports}: ${v.rule}`);
  if (violations.length) {
    console.log(`\n${violations.length} import rule violations (layers: scripts/check_imports.ts)`);
    Deno.exit(1);
  }
  console.log(`Imports follow the layers (${files.size} files, no cycles).`);
}
