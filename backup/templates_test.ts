import { assertEquals, assertThrows } from "../tests/helpers/assert.ts";
import {
  assertSafeKey,
  renderBackupKey,
  renderTemplate,
  TemplateError,
  timeValues,
  validateTemplate,
} from "./templates.ts";

const at = new Date(Date.UTC(2026, 2, 4, 5, 6, 7));
const base = {
  clusterName: "aurora-main",
  databaseName: "orders",
  namespace: "shop",
  runId: "r1",
  at,
};

Deno.test("timeValues formats UTC with zero padding", () => {
  assertEquals(timeValues(at), {
    Timestamp: "20260304-050607",
    Year: "2026",
    Month: "03",
    Day: "04",
  });
});

Deno.test("renderBackupKey", async (t) => {
  const cases: {
    name: string;
    opts: Partial<typeof base> & Record<string, unknown>;
    want: string;
  }[] = [
    { name: "defaults", opts: {}, want: "aurora-main/orders/20260304-050607-r1.sql.gz" },
    {
      name: "the default filename of a custom-format dump ends in .dump",
      opts: { format: "custom" },
      want: "aurora-main/orders/20260304-050607-r1.dump",
    },
    {
      name: "the default filename of a zstd plain dump ends in .sql.zst",
      opts: { compression: "zstd" },
      want: "aurora-main/orders/20260304-050607-r1.sql.zst",
    },
    {
      name: "custom keeps .dump whatever codec pg_dump uses inside",
      opts: { format: "custom", compression: "zstd" },
      want: "aurora-main/orders/20260304-050607-r1.dump",
    },
    {
      name: "an explicit filename is used as it is, even if it names another codec",
      opts: { filenameTemplate: "{{ .Timestamp }}.sql.gz", compression: "zstd" },
      want: "aurora-main/orders/20260304-050607.sql.gz",
    },
    {
      name: "an explicit filename is used as it is",
      opts: { filenameTemplate: "{{ .Timestamp }}.sql.gz", format: "custom" },
      want: "aurora-main/orders/20260304-050607.sql.gz",
    },
    {
      name: "all variables",
      opts: {
        pathTemplate: "{{.Namespace}}/{{ .Year }}/{{ .Month }}/{{ .Day }}",
        filenameTemplate: "{{ .DatabaseName }}-{{ .RunID }}.dump",
      },
      want: "shop/2026/03/04/orders-r1.dump",
    },
    {
      name: "trailing and leading slashes of the path are trimmed",
      opts: { pathTemplate: "/backups/{{ .ClusterName }}/" },
      want: "backups/aurora-main/20260304-050607-r1.sql.gz",
    },
    { name: "empty path", opts: { pathTemplate: "" }, want: "20260304-050607-r1.sql.gz" },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assertEquals(renderBackupKey({ ...base, ...c.opts } as typeof base), c.want);
    });
  }
});

Deno.test("validateTemplate rejects unknown variables and malformed actions", async (t) => {
  const bad: [string, RegExp][] = [
    ["{{ .Cluster }}", /unknown variable "\.Cluster"/],
    ["{{ ClusterName }}", /not of the form/],
    ["{{ .A | lower }}", /not of the form/],
    ["x{{ .Day }", /unbalanced/],
    ["x }}", /unbalanced/],
  ];
  for (const [tpl, re] of bad) {
    await t.step(tpl, () => {
      const e = assertThrows(() => validateTemplate(tpl), TemplateError);
      if (!re.test(e.message)) throw new Error(`message ${e.message} does not match ${re}`);
    });
  }
  validateTemplate("{{ .Timestamp }}.sql.gz");
  assertEquals(renderTemplate("plain", {} as never), "plain");
});

Deno.test("rendered keys must be safe relative paths", async (t) => {
  for (
    const [name, opts] of [
      ["dot-dot from a value", { databaseName: ".." }],
      ["dot-dot in the template", { pathTemplate: "a/../{{ .ClusterName }}" }],
      ["double slash", { pathTemplate: "a//b" }],
      ["control character", { namespace: "a\nb", pathTemplate: "{{ .Namespace }}" }],
    ] as const
  ) {
    await t.step(name, () => {
      assertThrows(() => renderBackupKey({ ...base, ...opts }), TemplateError);
    });
  }
  assertThrows(() => assertSafeKey("/abs"), TemplateError, "must not start with /");
  assertThrows(() => assertSafeKey(""), TemplateError, "empty");
  assertSafeKey("a/b.c/d..e");
});
