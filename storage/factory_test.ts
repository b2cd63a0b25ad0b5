import { assert, assertStrictEquals, assertThrows } from "../tests/helpers/assert.ts";
import { createStore, locationProvider } from "./factory.ts";
import { StorageError } from "./store.ts";

Deno.test("createStore", async (t) => {
  await t.step("picks the backend named by the location", async () => {
    const cases = [
      [{ s3: { bucket: "b", region: "us-east-1" } }, "s3"],
      [{ gcs: { bucket: "b" } }, "gcs"],
      [{ azure: { storageAccount: "a", container: "c" } }, "azure"],
      [{ local: { path: "/tmp" } }, "local"],
    ] as const;
    for (const [location, provider] of cases) {
      const store = createStore(location, { credentials: credentialsFor(provider) });
      assertStrictEquals(store.provider, provider);
      await store.close();
    }
  });

  await t.step("requires exactly one backend", () => {
    for (const location of [{}, { s3: { bucket: "b" }, local: { path: "/tmp" } }]) {
      const e = assertThrows(() => locationProvider(location), StorageError);
      assertStrictEquals(e.reason, "InvalidConfiguration");
    }
  });

  await t.step("incomplete static credentials say which keys are missing, not their values", () => {
    const e = assertThrows(
      () => createStore({ s3: { bucket: "b" } }, { credentials: { accessKeyId: "AKIDSECRET" } }),
      StorageError,
    );
    assertStrictEquals(e.reason, "CredentialsMissing");
    assert(!e.message.includes("AKIDSECRET"));
  });
});

function credentialsFor(provider: string): Record<string, string> | undefined {
  switch (provider) {
    case "s3":
      return { accessKeyId: "a", secretAccessKey: "b" };
    case "gcs":
      return {
        "credentials.json": JSON.stringify({
          type: "service_account",
          client_email: "x@y",
          private_key: "k",
        }),
      };
    case "azure":
      return { accountKey: btoa("key") };
    default:
      return undefined;
  }
}
