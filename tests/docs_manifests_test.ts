/**
 * The manifests the docs show are accepted by a real apiserver with our CRDs (server-side dry
 * run): every ```yaml block of README.md and the install, cloud, GitOps and upgrading pages,
 * except the objects of other projects' CRDs (Argo CD, Flux), which only name them.
 */
import { parseAllDocuments } from "yaml";
import { assert, assertEquals } from "./helpers/assert.ts";
import { startKube } from "./helpers/kube.ts";

const root = new URL("../", import.meta.url).pathname;
const PAGES = [
  "README.md",
  "docs/install.md",
  "docs/cloud/aws.md",
  "docs/cloud/gcp.md",
  "docs/cloud/azure.md",
  "docs/gitops.md",
  "docs/upgrading.md",
  "docs/design/privileges.md",
];
const FOREIGN = /argoproj\.io|fluxcd\.io/;

Deno.test(
  {
    name: "the docs' manifests are accepted by the apiserver",
    sanitizeOps: false,
    sanitizeResources: false,
  },
  async () => {
    await using kube = await startKube();
    for (const ns of ["postgres-operator-system", "argocd", "shop"]) {
      await kube.kubectl(["create", "namespace", ns], { check: true });
    }
    let checked = 0;
    for (const page of PAGES) {
      const text = await Deno.readTextFile(`${root}${page}`);
      for (const block of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
        const objs = parseAllDocuments(block[1]!).map((d) => d.toJS())
          .filter((o) => o?.apiVersion && !FOREIGN.test(o.apiVersion));
        if (!objs.length) continue;
        const r = await kube.kubectl(["apply", "--dry-run=server", "-f", "-"], {
          stdin: objs.map((o) => JSON.stringify(o)).join("\n"),
        });
        assertEquals(r.code, 0, `${page}: ${r.stderr}`);
        checked += objs.length;
      }
    }
    assert(checked >= 11, `only ${checked} objects found in the docs`);
  },
);
