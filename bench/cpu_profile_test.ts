import { assertEquals } from "../tests/helpers/assert.ts";
import { groupOf, parseStat, splitCells } from "./cpu_profile.ts";

Deno.test("parseStat reads utime+stime and cutime+cstime past a comm with spaces and ')'", () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
  // stime cutime cstime ...
  const line = "42 (V8 a) b) S 1 42 42 0 -1 4194560 10 0 0 0 250 50 700 300 20 0 9 0 1 2 3";
  assertEquals(parseStat(line), { self: 3, children: 10 });
});

Deno.test("groupOf sorts Deno's threads", () => {
  assertEquals(groupOf("deno", true), "main");
  assertEquals(groupOf("worker-3", false), "workers");
  assertEquals(groupOf("V8 DefaultWorke", false), "v8");
  assertEquals(groupOf("tokio-runtime-w", false), "io");
  assertEquals(groupOf("deno", false), "other");
});

Deno.test("splitCells totals every share against cores × wall", () => {
  const cells = splitCells(
    { main: 1, workers: 2, v8: 0.5, io: 0.25, other: 0.25, tools: 3, server: 1 },
    4,
    2,
  );
  assertEquals(cells, ["1.0", "3.0", "1.0", "2.0", "1.0", "8.0", "100%"]);
});
