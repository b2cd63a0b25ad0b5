import assert from "node:assert/strict";
import { ListMultipartUploadsCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort } from "../tests/helpers/free_port.ts";
import { MINIO_PASSWORD, startMinio } from "../tests/helpers/storage_servers.ts";
import { assertStorageError, bytesStream, runConformance } from "./conformance.ts";
import { createStore } from "./factory.ts";

Deno.test("s3 store passes the conformance suite against MinIO", async (t) => {
  await using minio = await startMinio();
  await minio.createBucket("test");
  const client = new S3Client({
    endpoint: minio.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: {
      accessKeyId: minio.credentials["accessKeyId"]!,
      secretAccessKey: MINIO_PASSWORD,
    },
  });
  try {
    await runConformance(
      t,
      ({ missingBucket }) => minio.makeStore({ bucket: missingBucket ? "no-such-bucket" : "test" }),
      {
        // The interface cannot see incomplete multipart uploads; the server can.
        assertNoLeftovers: async (_store, key) => {
          const res = await client.send(
            new ListMultipartUploadsCommand({ Bucket: "test", Prefix: key }),
          );
          assert.deepEqual(res.Uploads ?? [], [], "an incomplete multipart upload was left");
        },
      },
    );
  } finally {
    client.destroy();
  }
});

Deno.test("s3 store maps failures to reasons without leaking secrets", async (t) => {
  await using minio = await startMinio();
  await minio.createBucket("test");

  await t.step("a wrong secret is AccessDenied", async () => {
    const store = minio.makeStore({
      credentials: {
        accessKeyId: minio.credentials["accessKeyId"]!,
        secretAccessKey: "wrong-secret-value",
      },
    });
    try {
      const err = await store.probe().catch((e) => e);
      await assertStorageError(Promise.reject(err), "AccessDenied");
      assert.ok(!String(err.message).includes("wrong-secret-value"));
      await assertStorageError(store.put("k/secret-key-name", bytesStream(10)), "AccessDenied");
      const putErr = await store.put("k/secret-key-name", bytesStream(10)).catch((e) => e);
      assert.ok(!String(putErr.message).includes("secret-key-name"));
    } finally {
      await store.close();
    }
  });

  await t.step("an unknown access key is AccessDenied", async () => {
    const store = minio.makeStore({
      credentials: { accessKeyId: "nobody", secretAccessKey: "nobody-secret" },
    });
    try {
      await assertStorageError(store.probe(), "AccessDenied");
    } finally {
      await store.close();
    }
  });

  await t.step("a closed port is Unreachable", async () => {
    const store = createStore(
      { s3: { bucket: "test", endpoint: `http://127.0.0.1:${freePort()}`, forcePathStyle: true } },
      { credentials: minio.credentials },
    );
    try {
      await assertStorageError(store.probe(), "Unreachable");
      await assertStorageError(store.put("x", bytesStream(10)), "Unreachable");
    } finally {
      await store.close();
    }
  });
});
