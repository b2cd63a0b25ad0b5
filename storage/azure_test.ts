import { assert } from "../tests/helpers/assert.ts";
import { freePort } from "../tests/helpers/free_port.ts";
import { startAzurite, startCommitProxy } from "../tests/helpers/storage_servers.ts";
import { assertStorageError, runConformance } from "../tests/helpers/storage_conformance.ts";
import { createStore } from "./factory.ts";

Deno.test("azure store passes the conformance suite against Azurite", async (t) => {
  await using azurite = await startAzurite();
  await azurite.createBucket("test");
  await runConformance(
    t,
    ({ missingBucket }) =>
      azurite.makeStore({ bucket: missingBucket ? "no-such-container" : "test" }),
    { commitGate: () => startCommitProxy(azurite) },
  );
});

Deno.test("azure store maps failures to reasons without leaking secrets", async (t) => {
  await using azurite = await startAzurite();
  await azurite.createBucket("test");

  await t.step("a wrong account key is AccessDenied", async () => {
    const wrong = btoa("wrong-account-key-value-0123456789");
    const store = azurite.makeStore({ credentials: { accountKey: wrong } });
    try {
      const err = await store.probe().catch((e) => e);
      await assertStorageError(Promise.reject(err), "AccessDenied");
      assert(!String(err.message).includes(wrong));
    } finally {
      await store.close();
    }
  });

  await t.step("a closed port is Unreachable", async () => {
    const store = createStore(
      {
        azure: {
          storageAccount: "devstoreaccount1",
          container: "test",
          endpoint: `http://127.0.0.1:${freePort()}/devstoreaccount1`,
        },
      },
      { credentials: azurite.credentials },
    );
    try {
      await assertStorageError(store.probe(), "Unreachable");
    } finally {
      await store.close();
    }
  });
});
