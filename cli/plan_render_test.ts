import { assert, assertEquals } from "../tests/helpers/assert.ts";
import { exitCode, renderJson, renderText, type ResourcePlan } from "./plan_render.ts";
import { withDefaults } from "./defaults.ts";
import { parseManifests } from "./plan_sources.ts";

function assertStringIncludes(actual: string, part: string): void {
  assert(actual.includes(part), `${JSON.stringify(part)} not in:\n${actual}`);
}

const VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";

function plan(over: Partial<ResourcePlan>): ResourcePlan {
  return {
    kind: "DatabaseUser",
    namespace: "shop",
    name: "app",
    result: "planned",
    statements: [],
    secrets: [],
    notes: [],
    ...over,
  };
}

Deno.test("plan rendering", async (t) => {
  const changed = plan({
    statements: [
      { sql: `CREATE ROLE "app" LOGIN PASSWORD '${VERIFIER}'` },
      { sql: `ALTER ROLE "app" PASSWORD 'it''s secret'`, database: "shop" },
      { sql: 'GRANT "shop_readwrite" TO "app"' },
    ],
    secrets: [{ action: "create", name: "app-credentials", keys: ["password", "uri"] }],
  });

  await t.step("passwords are redacted in text and JSON, Secret values never appear", () => {
    for (const out of [renderText([changed]), renderJson([changed])]) {
      assert(!out.includes("SCRAM-SHA-256"), out);
      assert(!out.includes("secret'"), out);
      assertStringIncludes(out, `PASSWORD '<redacted>'`);
    }
    const text = renderText([changed]);
    assertStringIncludes(text, `DatabaseUser shop/app:\n  sql: CREATE ROLE "app" LOGIN`);
    assertStringIncludes(text, `sql (in database "shop"): ALTER ROLE "app" PASSWORD '<redacted>'`);
    assertStringIncludes(text, `secret create "app-credentials" (keys: password, uri)`);
  });

  await t.step("no changes, not planned, blocked", () => {
    const text = renderText([
      plan({}),
      plan({ kind: "DBCluster", name: "main", result: "skipped" }),
      plan({
        name: "bad",
        result: "blocked",
        blocked: { reason: "InvalidUsername", message: "m" },
      }),
    ]);
    assertStringIncludes(text, "DatabaseUser shop/app:\n  no changes\n");
    assertStringIncludes(text, "not planned (kind DBCluster)");
    assertStringIncludes(text, "blocked (InvalidUsername): m");
  });

  await t.step("exit codes: 0 unchanged, 2 changes, 1 blocked", () => {
    const table: [ResourcePlan[], number][] = [
      [[], 0],
      [[plan({}), plan({ result: "skipped" })], 0],
      [[plan({}), changed], 2],
      [[changed, plan({ result: "blocked", blocked: { reason: "X", message: "" } })], 1],
    ];
    for (const [plans, code] of table) assertEquals(exitCode(plans), code);
  });

  await t.step("JSON carries the changes flag and the exit code", () => {
    const j = JSON.parse(renderJson([changed, plan({})]));
    assertEquals(j.exitCode, 2);
    assertEquals(j.resources.map((r: { changes: boolean }) => r.changes), [true, false]);
  });
});

Deno.test("manifests: multi-document YAML, Lists flattened, empty documents skipped", () => {
  const docs = parseManifests(
    `---
apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: a }
---
---
apiVersion: v1
kind: List
items:
  - { apiVersion: v1, kind: ConfigMap, metadata: { name: b } }
`,
    "x.yaml",
  );
  assertEquals(docs.map((d) => `${d.kind}/${d.metadata.name}`), ["Database/a", "ConfigMap/b"]);
  let err: unknown;
  try {
    parseManifests("kind: Database\nmetadata: {}\n", "y.yaml");
  } catch (e) {
    err = e;
  }
  assertStringIncludes(String(err), "y.yaml: every object needs kind and metadata.name");
});

Deno.test("CRD defaults are applied to a manifest as the apiserver would", () => {
  const schema = {
    properties: {
      spec: {
        properties: {
          privileges: { default: "readonly" },
          secret: { default: {}, properties: { onConflict: { default: "Fail" } } },
          password: { properties: { length: { default: 16 } } },
          list: { items: { properties: { level: { default: "readonly" } } } },
        },
      },
    },
  };
  const m = { spec: { privileges: "readwrite", list: [{}, { level: "owner" }] } };
  assertEquals<unknown>(withDefaults(schema, m), {
    spec: {
      privileges: "readwrite",
      secret: { onConflict: "Fail" },
      list: [{ level: "readonly" }, { level: "owner" }],
    },
  });
  assertEquals(m.spec.list[0], {}, "the manifest itself is left as it is");
});
