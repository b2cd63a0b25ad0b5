import { assert, assertEquals, assertStrictEquals, assertThrows } from "../tests/helpers/assert.ts";
import { StorageError } from "./store.ts";
import { parseStorageUrl } from "./url.ts";

Deno.test("parseStorageUrl", async (t) => {
  const ok: [string, ReturnType<typeof parseStorageUrl>][] = [
    ["s3://backups", { location: { s3: { bucket: "backups" } }, prefix: "" }],
    ["s3://backups/prod/db1", { location: { s3: { bucket: "backups" } }, prefix: "prod/db1/" }],
    [
      "s3://b/p/?endpoint=http://127.0.0.1:9000/&region=eu-west-1&forcePathStyle=true",
      {
        location: {
          s3: {
            bucket: "b",
            endpoint: "http://127.0.0.1:9000",
            region: "eu-west-1",
            forcePathStyle: true,
          },
        },
        prefix: "p/",
      },
    ],
    [
      "gs://bkt/a/b?endpoint=http://127.0.0.1:4443&project=p1",
      {
        location: { gcs: { bucket: "bkt", endpoint: "http://127.0.0.1:4443", project: "p1" } },
        prefix: "a/b/",
      },
    ],
    [
      "azblob://acct/cont/x%20y",
      { location: { azure: { storageAccount: "acct", container: "cont" } }, prefix: "x y/" },
    ],
    ["azblob://acct/cont", {
      location: { azure: { storageAccount: "acct", container: "cont" } },
      prefix: "",
    }],
    ["file:///var/backups/", { location: { local: { path: "/var/backups" } }, prefix: "" }],
  ];
  for (const [input, expected] of ok) {
    await t.step(input, () => assertEquals(parseStorageUrl(input), expected));
  }
  const bad = [
    "not a url",
    "ftp://host/x",
    "s3:///prefix",
    "s3://b?color=red",
    "s3://key:secret@b/x",
    "s3://b?forcePathStyle=maybe",
    "s3://b?endpoint=ftp://x",
    "azblob://acct",
    "file:///",
    "file://host/x",
  ];
  for (const input of bad) {
    await t.step(`rejects ${input}`, () => {
      const e = assertThrows(() => parseStorageUrl(input), StorageError);
      assertStrictEquals(e.reason, "InvalidConfiguration");
      assert(!e.message.includes("secret"));
    });
  }
});
