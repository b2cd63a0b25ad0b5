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

Deno.test("SecretReads.echo: an event that comes before its write's response waits for it", async () => {
  const reads = new SecretReads({ client: {} as KubeClient, informer: { get: () => undefined } });
  const woken: string[] = [];
  assertEquals(reads.echo(meta("1"), () => woken.push("idle")), false, "no write in flight");
  let answer!: (s: ReturnType<typeof meta>) => void;
  const write = reads.write(() => new Promise<ReturnType<typeof meta>>((r) => (answer = r)));
  assertEquals(reads.echo(meta("7"), () => woken.push("echo")), true, "held");
  assertEquals(reads.echo(meta("8"), () => woken.push("other")), true, "held");
  answer(meta("7"));
  await write;
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(woken, ["other"], "the echo of version 7 started nothing; version 8 did");
  assertEquals(reads.echo(meta("7"), () => woken.push("late")), true, "a late echo");
});
