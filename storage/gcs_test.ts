import { freePort } from "../tests/helpers/free_port.ts";
import { startCommitProxy, startFakeGcs } from "../tests/helpers/storage_servers.ts";
import { assertStorageError, runConformance } from "../tests/helpers/storage_conformance.ts";
import { createStore } from "./factory.ts";

Deno.test("gcs store passes the conformance suite against fake-gcs-server", async (t) => {
  await using gcs = await startFakeGcs();
  await gcs.createBucket("test");
  await runConformance(
    t,
    ({ missingBucket }) => gcs.makeStore({ bucket: missingBucket ? "no-such-bucket" : "test" }),
    { commitGate: () => startCommitProxy(gcs) },
  );
});

Deno.test("gcs store maps an unreachable endpoint to Unreachable", async () => {
  const store = createStore({
    gcs: { bucket: "test", project: "test", endpoint: `http://127.0.0.1:${freePort()}` },
  });
  try {
    await assertStorageError(store.probe(), "Unreachable");
  } finally {
    await store.close();
  }
});
