/**
 * The Kubernetes test environment itself: it starts with authentication on, installs the CRDs,
 * and leaves nothing behind when it stops, including when the test using it fails.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { exists, startKube } from "./kube.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function pidsOf(pattern: string): Promise<string[]> {
  return new Deno.Command("pgrep", { args: ["-f", pattern], stdout: "piped" }).output()
    .then((o) => new TextDecoder().decode(o.stdout).split("\n").filter(Boolean));
}

Deno.test({
  name: "startKube: a real, authenticated apiserver with the CRDs, cleaned up on stop",
  ...opts,
}, async () => {
  let dir = "";
  {
    await using kube = await startKube();
    dir = kube.dir;
    const crds = (await kube.kubectl(["get", "crds", "-o", "name"], { check: true })).stdout;
    assertEquals(crds.split("\n").filter((l) => l.includes("dbtether.io")).length, 7);
    assert(crds.includes("postgresdatabases.experimental.bujarmurati.com"));
    // Anonymous requests are not allowed to do anything: authentication is real.
    const anon = await fetch(`${kube.server}/api/v1/namespaces`, {
      client: Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${dir}/ca.crt`)] }),
    });
    assert(anon.status === 401 || anon.status === 403, `anonymous got ${anon.status}`);
    await anon.body?.cancel();
    // A user without RBAC grants is authenticated but forbidden.
    const nobody = await kube.userKubeconfig("nobody");
    const r = await kube.kubectl(["--kubeconfig", nobody, "get", "secrets"]);
    assert(/forbidden/i.test(r.stderr), r.stderr);
    assert((await pidsOf(dir)).length >= 2, "etcd and kube-apiserver run from the env's dir");
  }
  assertEquals(await pidsOf(dir), [], "no process left");
  assert(!(await exists(dir)), "files removed");
});

Deno.test(
  { name: "startKube: cleanup also happens when the test body throws", ...opts },
  async () => {
    let dir = "";
    await assertRejects(
      async () => {
        await using kube = await startKube({ crds: false });
        dir = kube.dir;
        throw new Error("the test failed");
      },
      Error,
      "the test failed",
    );
    assertEquals(await pidsOf(dir), []);
    assert(!(await exists(dir)));
  },
);
