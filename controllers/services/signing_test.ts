import { assert, assertEquals } from "../../tests/helpers/assert.ts";
import { keysOf, SIGNING_ENTRY } from "./signing.ts";

const b64 = (n: number, fill: number) => btoa(String.fromCharCode(...new Uint8Array(n).fill(fill)));

Deno.test("keysOf: signing-key signs, every valid entry verifies", async (t) => {
  await t.step("one generated key", () => {
    const k = keysOf({ [SIGNING_ENTRY]: b64(32, 1) });
    assert(k.signing);
    assertEquals(k.all.map((x) => x.id), [k.signing.id]);
  });
  await t.step("a rotated set: the old key still verifies", () => {
    const k = keysOf({ [SIGNING_ENTRY]: b64(32, 2), "retired-2026-11": b64(48, 1) });
    assertEquals(k.all.length, 2);
    assert(k.signing && k.all.some((x) => x.id !== k.signing!.id));
  });
  await t.step("short or missing entries are reported, not used", () => {
    const k = keysOf({ [SIGNING_ENTRY]: b64(8, 1), other: b64(32, 3) });
    assertEquals(k.signing, undefined);
    assertEquals(k.invalid, [SIGNING_ENTRY]);
    assertEquals(k.all.length, 1);
    assertEquals(keysOf(undefined).all, []);
  });
});
