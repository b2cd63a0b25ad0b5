import { assertEquals } from "../../tests/helpers/assert.ts";
import { namespaceAllowed, namespaceGranted } from "./namespaces.ts";

Deno.test("namespace allow-lists", async (t) => {
  const table: [
    string,
    Parameters<typeof namespaceAllowed>[0],
    string,
    Record<string, string>,
    boolean,
  ][] = [
    ["unset allows all", undefined, "a", {}, true],
    ["empty allows all", {}, "a", {}, true],
    ["listed name", { names: ["a", "b"] }, "b", {}, true],
    ["unlisted name", { names: ["a"] }, "c", {}, false],
    ["selector match", { selector: { matchLabels: { team: "x" } } }, "c", { team: "x" }, true],
    ["selector mismatch", { selector: { matchLabels: { team: "x" } } }, "c", { team: "y" }, false],
    ["name or selector", { names: ["a"], selector: { matchLabels: { team: "x" } } }, "a", {}, true],
    [
      "In",
      { selector: { matchExpressions: [{ key: "env", operator: "In", values: ["dev", "qa"] }] } },
      "n",
      { env: "qa" },
      true,
    ],
    [
      "NotIn",
      { selector: { matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }] } },
      "n",
      { env: "prod" },
      false,
    ],
    [
      "Exists",
      { selector: { matchExpressions: [{ key: "db", operator: "Exists" }] } },
      "n",
      {},
      false,
    ],
    [
      "DoesNotExist",
      { selector: { matchExpressions: [{ key: "db", operator: "DoesNotExist" }] } },
      "n",
      {},
      true,
    ],
  ];
  for (const [name, allowed, ns, labels, want] of table) {
    await t.step(name, () => assertEquals(namespaceAllowed(allowed, ns, labels), want));
  }
});

Deno.test("namespace grants include nobody unless named or selected", async (t) => {
  const table: [
    string,
    Parameters<typeof namespaceGranted>[0],
    string,
    Record<string, string>,
    boolean,
  ][] = [
    ["unset grants nobody", undefined, "a", {}, false],
    ["empty grants nobody", {}, "a", {}, false],
    ["empty names grant nobody", { names: [] }, "a", {}, false],
    ["listed name", { names: ["a"] }, "a", {}, true],
    ["unlisted name", { names: ["a"] }, "b", {}, false],
    ["selector match", { selector: { matchLabels: { team: "x" } } }, "b", { team: "x" }, true],
    ["selector mismatch", { selector: { matchLabels: { team: "x" } } }, "b", {}, false],
    ["empty selector grants all", { selector: {} }, "b", {}, true],
  ];
  for (const [name, grant, ns, labels, want] of table) {
    await t.step(name, () => assertEquals(namespaceGranted(grant, ns, labels), want));
  }
});
