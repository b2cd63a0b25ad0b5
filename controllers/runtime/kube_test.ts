/**
 * Where `loadKubeConfig` finds the cluster: --kubeconfig, then $KUBECONFIG (its first existing
 * entry), then ~/.kube/config, then the in-cluster service account, else a clear error. Pure but
 * for a temporary directory of kubeconfig files; no server.
 */
import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { kubeconfigText } from "../../tests/helpers/fixtures.ts";
import { loadKubeConfig } from "./kube.ts";

Deno.test("kubeconfig resolution order: flag, $KUBECONFIG, ~/.kube/config, in-cluster", async (t) => {
  const dir = await Deno.makeTempDir();
  const write = async (name: string, server: string) => {
    await Deno.mkdir(`${dir}/${name}`.replace(/\/[^/]+$/, ""), { recursive: true });
    await Deno.writeTextFile(`${dir}/${name}`, kubeconfigText(server));
    return `${dir}/${name}`;
  };
  const flag = await write("flag.yaml", "https://flag.example:6443");
  const envPath = await write("env.yaml", "https://env.example:6443");
  await write("home/.kube/config", "https://home.example:6443");
  const exists = (p: string) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  };
  const server = (o: Parameters<typeof loadKubeConfig>[0]) =>
    loadKubeConfig(o).kc.getCurrentCluster()?.server;
  const home = `${dir}/home`;
  await t.step("the flag wins", () => {
    assertEquals(
      server({ path: flag, env: { KUBECONFIG: envPath, HOME: home }, exists }),
      "https://flag.example:6443",
    );
  });
  await t.step("then $KUBECONFIG (first existing entry)", () => {
    assertEquals(
      server({ env: { KUBECONFIG: `${dir}/missing:${envPath}`, HOME: home }, exists }),
      "https://env.example:6443",
    );
  });
  await t.step("then ~/.kube/config", () => {
    assertEquals(server({ env: { HOME: home }, exists }), "https://home.example:6443");
  });
  await t.step("then in-cluster (needs KUBERNETES_SERVICE_HOST)", () => {
    // client-node reads the service account token from its fixed path; absent here, so it throws.
    let msg = "";
    try {
      loadKubeConfig({
        env: { HOME: `${dir}/nowhere`, KUBERNETES_SERVICE_HOST: "10.0.0.1" },
        exists,
      });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(!/Cannot find a Kubernetes configuration/.test(msg), "in-cluster was attempted");
  });
  await t.step("nothing at all: a clear error", () => {
    let msg = "";
    try {
      loadKubeConfig({ env: { HOME: `${dir}/nowhere` }, exists });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(
      /Cannot find a Kubernetes configuration: pass --kubeconfig, set \$KUBECONFIG/.test(msg),
      msg,
    );
  });
  await Deno.remove(dir, { recursive: true });
});
