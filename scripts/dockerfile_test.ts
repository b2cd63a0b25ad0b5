/**
 * The image carries the client tools of exactly the supported PostgreSQL majors: a server of any
 * of them can be dumped (pg_dump must be at least the server's major).
 */
import { assertEquals } from "../tests/helpers/assert.ts";
import { SUPPORTED_PG_MAJORS } from "../lib/pg_majors.ts";

Deno.test("Dockerfile installs postgresql-client of every supported major, no other", async () => {
  const text = await Deno.readTextFile(new URL("../Dockerfile", import.meta.url));
  const majors = [...text.matchAll(/\bpostgresql-client-(\d+)\b/g)].map((m) => Number(m[1]));
  assertEquals([...new Set(majors)].sort((a, b) => a - b), [...SUPPORTED_PG_MAJORS]);
});
