import { assertEquals } from "../helpers/assert.ts";
import { Canaries, encodedForms } from "./canaries.ts";

Deno.test("canaries are found raw, URL-encoded and inside longer base64 texts", () => {
  const c = new Canaries();
  const pw = "s3cr3t/p+ss?w0rd=ü";
  c.add("pw", pw);
  const urlSafe = btoa(`x${pw}yz`).replaceAll("+", "-").replaceAll("/", "_");
  const found = (text: string) => c.scan({ text }).map((f) => f.form);
  const utf8 = (s: string) => String.fromCharCode(...new TextEncoder().encode(s));
  assertEquals(found(`log line ${pw}`).includes("raw"), true);
  assertEquals(found(`postgres://u:${encodeURIComponent(pw)}@h/db`), ["url-encoded"]);
  for (const prefix of ["", "a", "ab", "abc"]) {
    const ascii = btoa(utf8(`${prefix}{"password":"${pw}"}`));
    assertEquals(found(ascii).length > 0, true, `base64 after ${prefix.length} bytes`);
  }
  assertEquals(found(urlSafe).some((f) => f.startsWith("base64url")), true);
  assertEquals(found("nothing to see").length, 0);
});

Deno.test("encodedForms: every base64 form is long enough to mean something", () => {
  for (const v of encodedForms("abcdefghijklmnop").values()) {
    assertEquals(v.length >= 8, true);
  }
});
