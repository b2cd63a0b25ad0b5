import { assertEquals } from "../../tests/helpers/assert.ts";
import type { KubeClient } from "../runtime/kube.ts";
import { SecretReads } from "./secret_reads.ts";

const meta = (rv: string) => ({
  apiVersion: "v1",
  kind: "Secret",
  spec: undefined,
  metadata: { namespace: "t", name: "s", resourceVersion: rv },
});

Deno.test("SecretReads.ownWrite: only the version this process's last write left", () => {
  // remember() never calls the apiserver; the informer is only asked by find().
  const reads = new SecretReads({
    client: {} as KubeClient,
    informer: { get: () => undefined },
  });
  assertEquals(reads.ownWrite(meta("1")), false, "nothing written");
  reads.remember(meta("5"));
  assertEquals(reads.ownWrite(meta("5")), true, "the echo of the write");
  assertEquals(reads.ownWrite(meta("6")), false, "someone changed it since");
  assertEquals(reads.ownWrite({ metadata: { namespace: "t", name: "other" } }), false);
  reads.forget({ namespace: "t", name: "s" });
  assertEquals(reads.ownWrite(meta("5")), false, "deleted by the operator");
});
