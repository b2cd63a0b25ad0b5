import { assertEquals } from "../tests/helpers/assert.ts";
import { placeOf, summarize } from "./profile.ts";

const frame = (functionName: string, url = "", lineNumber = 0) => ({
  functionName,
  url,
  lineNumber,
});

Deno.test("summarize sums self time per function and module, idle left out of the shares", () => {
  const profile = {
    nodes: [
      { id: 1, callFrame: frame("(idle)") },
      { id: 2, callFrame: frame("pull", "file:///r/backup/parallel_compress.ts", 78) },
      { id: 3, callFrame: frame("write") },
      { id: 4, callFrame: frame("pull", "file:///r/backup/parallel_compress.ts", 78) },
    ],
    samples: [1, 2, 3, 3, 4, 1],
    timeDeltas: [9000, 1000, 1000, 1000, 1000, 9000],
    startTime: 0,
    endTime: 22000,
  };
  const s = summarize(profile);
  assertEquals(s.busy, 0.004);
  assertEquals(s.functions, [
    ["pull — backup/parallel_compress.ts:79", "0.00", "50.0%"],
    ["write — (native)", "0.00", "50.0%"],
  ]);
  assertEquals(s.modules.map((r) => r[0]), ["backup/parallel_compress.ts", "(native)"]);
});

Deno.test("placeOf shortens repository files and npm packages", () => {
  assertEquals(placeOf(frame("f", "file:///work/x/storage/s3.ts")), "storage/s3.ts");
  assertEquals(
    placeOf(frame("f", "file:///root/.cache/node_modules/.deno/postgres@3.4.5/x/src/a.js")),
    "npm:postgres@3.4.5",
  );
  assertEquals(placeOf(frame("f")), "(native)");
});
