import { assertStrictEquals, assertThrows } from "./assert.ts";
import { pgCacheRoot, selectedMajor } from "./pg_install.ts";

Deno.test("DBTETHER_PG_VERSION picks a supported major, default the newest", async (t) => {
  await t.step("empty: 18", () => {
    // (An explicit undefined reads DBTETHER_PG_VERSION itself: the suite may run on any major.)
    assertStrictEquals(selectedMajor(""), 18);
    assertStrictEquals(selectedMajor(" "), 18);
  });
  await t.step("13 to 18 as given", () => {
    for (const v of ["13", "14", "15", "16", "17", "18"]) assertStrictEquals(selectedMajor(v), +v);
  });
  await t.step("anything else is refused with the range", () => {
    for (const v of ["12", "19", "16.2", "latest"]) {
      assertThrows(() => selectedMajor(v), Error, "expected a PostgreSQL major from 13 to 18");
    }
  });
});

Deno.test("the cache root follows DBTETHER_PG_CACHE, then the install script's rule", () => {
  assertStrictEquals(pgCacheRoot((k) => k === "DBTETHER_PG_CACHE" ? "/x" : undefined), "/x");
  const env = (k: string) => ({ DBTETHER_CACHE: "/c", HOME: "/h" } as Record<string, string>)[k];
  assertStrictEquals(
    pgCacheRoot(env),
    Deno.uid() === 0 ? "/var/cache/dbtether/postgres" : "/c/postgres",
  );
});
