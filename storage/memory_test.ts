import { runConformance } from "../tests/helpers/storage_conformance.ts";
import { MemoryStore } from "./memory.ts";

Deno.test("memory store passes the conformance suite", async (t) => {
  // One store for every step, as a bucket keeps objects between clients; close is a no-op.
  const bucket = new MemoryStore({ chunkSize: 1000 });
  await runConformance(
    t,
    ({ missingBucket }) => missingBucket ? new MemoryStore({ missing: true }) : bucket,
  );
});
