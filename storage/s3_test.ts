import {
  assert,
  assertEquals,
  assertRejects,
  assertStrictEquals,
} from "../tests/helpers/assert.ts";
import { ListMultipartUploadsCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort } from "../tests/helpers/free_port.ts";
import {
  MINIO_PASSWORD,
  MINIO_USER,
  startCommitProxy,
  startMinio,
} from "../tests/helpers/storage_servers.ts";
import {
  assertStorageError,
  bytesStream,
  runConformance,
} from "../tests/helpers/storage_conformance.ts";
import { createStore } from "./factory.ts";
import { partSize } from "./s3_multipart.ts";

const MiB = 1024 * 1024;

Deno.test("s3 part size doubles every 1,000 parts, up to S3's 5 GiB", () => {
  const table: [number, number][] = [
    [1, 5 * MiB],
    [1000, 5 * MiB],
    [1001, 10 * MiB],
    [2001, 20 * MiB],
    [10000, 5 * MiB * 512],
  ];
  for (const [n, want] of table) assertStrictEquals(partSize(5 * MiB, n), want, `part ${n}`);
  assertStrictEquals(partSize(64 * MiB, 10000), 5 * 1024 * MiB);
  let total = 0;
  for (let n = 1; n <= 10000; n++) total += partSize(5 * MiB, n);
  assert(total > 4.8 * 2 ** 40, `10,000 parts hold only ${total} bytes`);
});

Deno.test("s3 store round-trips multipart objects at and around part boundaries", async (t) => {
  await using minio = await startMinio();
  await minio.createBucket("test");
  const store = minio.makeStore(); // 5 MiB parts
  const client = new S3Client({
    endpoint: minio.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD },
  });
  const digest = async (s: ReadableStream<Uint8Array>) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", await new Response(s).arrayBuffer()));
  try {
    for (const size of [5 * MiB, 10 * MiB, 12 * MiB + 3]) {
      await t.step(`${size} bytes`, async () => {
        const key = `parts/${size}`;
        assertStrictEquals((await store.put(key, bytesStream(size, 3))).size, size);
        assertStrictEquals((await store.head(key))?.size, size);
        assertEquals(await digest(await store.get(key)), await digest(bytesStream(size, 3)));
        const res = await client.send(
          new ListMultipartUploadsCommand({ Bucket: "test", Prefix: key }),
        );
        assertEquals(res.Uploads ?? [], []);
      });
    }
  } finally {
    await store.close();
    client.destroy();
  }
});

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
          assertEquals(res.Uploads ?? [], [], "an incomplete multipart upload was left");
        },
        commitGate: () => startCommitProxy(minio),
      },
    );
  } finally {
    client.destroy();
  }
});

Deno.test("s3 store aborts the multipart upload it started when the source fails", async () => {
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
  const store = minio.makeStore();
  // MinIO lists multipart uploads only for an exact object name, not for a shorter prefix.
  const uploads = async () =>
    (await client.send(
      new ListMultipartUploadsCommand({ Bucket: "test", Prefix: "mp/dump.sql.gz" }),
    ))
      .Uploads ?? [];
  try {
    // Two full parts, then the source fails only once the server shows the upload in progress.
    const first = bytesStream(10 * 1024 * 1024 + 1).getReader();
    let sawUpload = false;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const r = await first.read();
        if (!r.done) return controller.enqueue(r.value);
        for (let i = 0; i < 100 && !sawUpload; i++) {
          sawUpload = (await uploads()).length > 0;
          if (!sawUpload) await new Promise((r) => setTimeout(r, 50));
        }
        controller.error(new Error("pg_dump was killed"));
      },
    });
    await assertRejects(() => store.put("mp/dump.sql.gz", body), Error, "pg_dump was killed");
    assert(sawUpload, "the put never started a multipart upload");
    assertEquals(await uploads(), []);
    assertStrictEquals(await store.head("mp/dump.sql.gz"), undefined);
  } finally {
    await store.close();
    client.destroy();
  }
});

Deno.test("s3 store: a server that dies mid-upload leaves an upload that a retry removes", async () => {
  await using minio = await startMinio();
  await minio.createBucket("test");
  const client = new S3Client({
    endpoint: minio.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD },
  });
  const key = "crash/dump.sql.gz";
  const uploads = async () =>
    (await client.send(new ListMultipartUploadsCommand({ Bucket: "test", Prefix: key })))
      .Uploads ?? [];
  const store = minio.makeStore();
  try {
    const first = bytesStream(10 * 1024 * 1024 + 1).getReader();
    const rest = bytesStream(20 * 1024 * 1024).getReader();
    let killed = false;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const r = await first.read();
        if (!r.done) return controller.enqueue(r.value);
        if (!killed) {
          while ((await uploads()).length === 0) await new Promise((r) => setTimeout(r, 50));
          await minio.stop({ hard: true });
          killed = true;
        }
        const more = await rest.read();
        if (more.done) controller.close();
        else controller.enqueue(more.value);
      },
    });
    await assertStorageError(store.put(key, body), "Unreachable");
    await minio.start();
    assertStrictEquals((await uploads()).length, 1, "the crashed upload should still be there");
    assertStrictEquals(await store.abortIncompleteUploads!(key), 1);
    assertEquals(await uploads(), []);
    assertStrictEquals(await store.head(key), undefined);
  } finally {
    await store.close();
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
      assert(!String(err.message).includes("wrong-secret-value"));
      await assertStorageError(store.put("k/secret-key-name", bytesStream(10)), "AccessDenied");
      const putErr = await store.put("k/secret-key-name", bytesStream(10)).catch((e) => e);
      assert(!String(putErr.message).includes("secret-key-name"));
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
