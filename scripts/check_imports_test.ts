/**
 * `lint:imports` (scripts/check_imports.ts) on small made-up trees: each rule it enforces is
 * broken once, and a tree that follows the layers reports nothing. Pure: the files are strings.
 */
import { assertEquals } from "../tests/helpers/assert.ts";
import { checkImports, importsOf, type Violation } from "./check_imports.ts";

/** A tree from `path: [relative imports]`; each file is only its import lines. */
function tree(files: Record<string, string[]>): Map<string, string> {
  return new Map(
    Object.entries(files).map((
      [path, deps],
    ) => [path, deps.map((d) => `import { x } from "${d}";\n`).join("")]),
  );
}

const KIND_RULE = "a kind's folder must not import another kind's (share it through services/)";
const TESTS_RULE = "code that ships must not import tests/, *_test.ts or *_test_util.ts";

Deno.test("check_imports reports each broken rule and nothing for a layered tree", async (t) => {
  const cases: [string, Record<string, string[]>, Violation[]][] = [
    [
      "a clean tree: main → register → kind → services → crds → runtime → lib; tests import all",
      {
        "main.ts": ["./controllers/register.ts", "./config.ts"],
        "config.ts": ["./lib/log.ts"],
        "controllers/register.ts": ["./database/reconcile.ts"],
        "controllers/database/reconcile.ts": ["./plan.ts", "../services/resolver.ts"],
        "controllers/database/plan.ts": ["../../crds/database.ts"],
        "controllers/services/resolver.ts": ["../runtime/kube.ts", "../../backup/pipeline.ts"],
        "crds/database.ts": ["../controllers/runtime/types.ts"],
        "controllers/runtime/kube.ts": ["../../lib/errors.ts"],
        "controllers/runtime/types.ts": [],
        "backup/pipeline.ts": ["../storage/store.ts"],
        "storage/store.ts": ["../lib/errors.ts"],
        "lib/errors.ts": [],
        "lib/log.ts": [],
        "controllers/database/plan_test.ts": ["./plan.ts", "../../tests/helpers/assert.ts"],
        "tests/helpers/assert.ts": [],
        "scripts/dev.ts": ["../tests/helpers/kube.ts"],
      },
      [],
    ],
    [
      "a layer violation: lib imports storage",
      { "lib/log.ts": ["../storage/store.ts"], "storage/store.ts": [] },
      [{
        file: "lib/log.ts",
        imports: "storage/store.ts",
        rule: "lib may import only lib (not storage)",
      }],
    ],
    [
      "a kind imports another kind",
      {
        "controllers/database/plan.ts": ["../database_user/secret.ts"],
        "controllers/database_user/secret.ts": [],
      },
      [{
        file: "controllers/database/plan.ts",
        imports: "controllers/database_user/secret.ts",
        rule: KIND_RULE,
      }],
    ],
    [
      "a cycle inside one layer",
      {
        "storage/a.ts": ["./b.ts"],
        "storage/b.ts": ["./c.ts"],
        "storage/c.ts": ["./a.ts"],
      },
      [{
        file: "storage/a.ts",
        imports: "storage/b.ts → storage/c.ts",
        rule: "import cycle",
      }],
    ],
    [
      "shipped code imports tests/",
      {
        "controllers/runtime/queue.ts": ["../../tests/helpers/timeouts.ts"],
        "tests/helpers/timeouts.ts": [],
      },
      [{
        file: "controllers/runtime/queue.ts",
        imports: "tests/helpers/timeouts.ts",
        rule: TESTS_RULE,
      }],
    ],
    [
      "shipped code imports a *_test.ts",
      { "backup/cli.ts": ["./cli_test.ts"], "backup/cli_test.ts": [] },
      [{ file: "backup/cli.ts", imports: "backup/cli_test.ts", rule: TESTS_RULE }],
    ],
    [
      "a *_test_util.ts fixture may import tests/; shipped code may not import the fixture",
      {
        "controllers/database/fixtures_test_util.ts": ["../../tests/helpers/objects.ts"],
        "tests/helpers/objects.ts": [],
        "controllers/database/plan.ts": ["./fixtures_test_util.ts"],
      },
      [{
        file: "controllers/database/plan.ts",
        imports: "controllers/database/fixtures_test_util.ts",
        rule: TESTS_RULE,
      }],
    ],
  ];
  for (const [name, files, want] of cases) {
    await t.step(name, () => assertEquals(checkImports(tree(files)), want));
  }
});

Deno.test("importsOf: relative imports, re-exports and dynamic imports; not comments or packages", () => {
  const text = `import { a } from "./a.ts";
import type { B } from "../b.ts";
export { c } from "./c.ts";
import "./side_effect.ts";
const d = await import("./d.ts");
import postgres from "postgres";
import nodeAssert from "node:assert/strict";
// import { e } from "./e.ts";
/* import { f } from "./f.ts"; */
`;
  assertEquals(importsOf(text).sort(), [
    "../b.ts",
    "./a.ts",
    "./c.ts",
    "./d.ts",
    "./side_effect.ts",
  ]);
});
