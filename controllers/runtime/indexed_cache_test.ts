import { assertEquals, assertThrows } from "../../tests/helpers/assert.ts";
import { IndexedCache } from "./indexed_cache.ts";

interface Obj {
  name: string;
  owners: string[];
}

const byOwner = (o: Obj) => o.owners;
const names = (xs: Obj[]) => xs.map((x) => x.name).sort();

Deno.test("IndexedCache keeps its indexes true on set, update and delete", async (t) => {
  await t.step("an index added late is built from what the store holds", () => {
    const c = new IndexedCache<Obj>();
    c.set("a", { name: "a", owners: ["u1"] });
    c.set("b", { name: "b", owners: ["u1", "u2"] });
    c.addIndex("owner", byOwner);
    assertEquals(names(c.byIndex("owner", "u1")), ["a", "b"]);
    assertEquals(names(c.byIndex("owner", "u2")), ["b"]);
    assertEquals(c.byIndex("owner", "nobody"), []);
  });

  await t.step("an object whose keys change leaves its old keys", () => {
    const c = new IndexedCache<Obj>();
    c.addIndex("owner", byOwner);
    c.set("a", { name: "a", owners: ["u1"] });
    c.set("a", { name: "a", owners: ["u2"] });
    assertEquals(c.byIndex("owner", "u1"), []);
    assertEquals(names(c.byIndex("owner", "u2")), ["a"]);
    assertEquals(c.indexSize("owner"), 1);
  });

  await t.step("an object changed in place by a reader is still removed under its old keys", () => {
    const c = new IndexedCache<Obj>();
    c.addIndex("owner", byOwner);
    const a = { name: "a", owners: ["u1"] };
    c.set("a", a);
    a.owners = ["u9"];
    c.delete("a");
    assertEquals(c.byIndex("owner", "u1"), []);
    assertEquals(c.byIndex("owner", "u9"), []);
    assertEquals(c.indexSize("owner"), 0);
  });

  await t.step("delete removes every key; a repeated value counts once", () => {
    const c = new IndexedCache<Obj>();
    c.addIndex("owner", byOwner);
    c.set("a", { name: "a", owners: ["u1", "u1"] });
    assertEquals(names(c.byIndex("owner", "u1")), ["a"]);
    c.delete("a");
    c.delete("a");
    assertEquals(c.byIndex("owner", "u1"), []);
    assertEquals(c.indexSize("owner"), 0);
    assertEquals(c.size, 0);
  });

  await t.step("the same index twice is one index; another function under the name throws", () => {
    const c = new IndexedCache<Obj>();
    c.addIndex("owner", byOwner);
    c.addIndex("owner", byOwner);
    c.set("a", { name: "a", owners: ["u1"] });
    assertEquals(names(c.byIndex("owner", "u1")), ["a"]);
    assertThrows(() => c.addIndex("owner", (o) => [o.name]), Error, "another function");
    assertThrows(() => c.byIndex("missing", "x"), Error, 'No index "missing"');
  });
});
