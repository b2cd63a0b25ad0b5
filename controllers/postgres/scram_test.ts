import {
  assert,
  assertMatch,
  assertNotStrictEquals,
  assertStrictEquals,
  assertThrows,
} from "../../tests/helpers/assert.ts";
import { startPostgres } from "../../tests/helpers/postgres.ts";
import { literal } from "./quote.ts";
import { generatePassword, PASSWORD_ALPHABET, scramMatches, scramVerifier } from "./scram.ts";

Deno.test("generatePassword: length bounds, alphabet, classes", () => {
  for (const n of [12, 16, 33, 64]) {
    const pw = generatePassword(n);
    assertStrictEquals(pw.length, n);
    assert([...pw].every((c) => PASSWORD_ALPHABET.includes(c)));
    assertMatch(pw, /[A-Z]/);
    assertMatch(pw, /[a-z]/);
    assertMatch(pw, /[0-9]/);
  }
  for (const bad of [0, 11, 65, 16.5]) assertThrows(() => generatePassword(bad), RangeError);
  assertNotStrictEquals(generatePassword(), generatePassword());
});

Deno.test("generatePassword is unbiased: rejected bytes are skipped", () => {
  // With a 3-letter alphabet bytes 255 (>= 255 = 256 - 256 % 3) must be rejected.
  const bytes = [255, 0, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  let i = 0;
  const random = (b: Uint8Array) => {
    for (let j = 0; j < b.length; j++) b[j] = bytes[i++ % bytes.length]!;
  };
  const pw = generatePassword(12, { alphabet: "abc", random });
  assertStrictEquals(pw, "abcabcabcabc");
  // Statistical check on the real RNG: every character shows up at a similar rate.
  const counts = new Map<string, number>();
  for (let k = 0; k < 400; k++) {
    for (const c of generatePassword(64)) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  const expected = (400 * 64) / PASSWORD_ALPHABET.length;
  for (const c of PASSWORD_ALPHABET) {
    const n = counts.get(c) ?? 0;
    assert(Math.abs(n - expected) < expected * 0.3, `${c}: ${n} vs ${expected}`);
  }
});

Deno.test("scramVerifier has PostgreSQL's format and a fixed salt gives a fixed result", async () => {
  const salt = new Uint8Array(16);
  const a = await scramVerifier("pencil", { salt });
  const b = await scramVerifier("pencil", { salt });
  assertStrictEquals(a, b);
  assertMatch(
    a,
    /^SCRAM-SHA-256\$4096:AAAAAAAAAAAAAAAAAAAAAA==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/,
  );
  assertNotStrictEquals(await scramVerifier("pencil"), await scramVerifier("pencil"));
  assert(await scramMatches("pencil", a));
  assert(!(await scramMatches("pencil2", a)));
});

Deno.test("PostgreSQL accepts our verifiers and ours match its own", async (t) => {
  await using pg = await startPostgres();
  const passwords = [generatePassword(12), generatePassword(64), "ascii with 'quote' and \\"];
  for (const [i, password] of passwords.entries()) {
    await t.step(`password ${i}: log in after setting our verifier`, async () => {
      const role = `scram_user_${i}`;
      const verifier = await scramVerifier(password);
      const r = await pg.psql(`CREATE ROLE ${role} LOGIN PASSWORD ${literal(verifier)}`);
      assertStrictEquals(r.code, 0, r.stderr);
      const stored = await pg.superSql(
        `SELECT rolpassword FROM pg_authid WHERE rolname = '${role}'`,
      );
      assertStrictEquals(stored.trim(), verifier, "stored as given, not re-hashed");
      const ok = await pg.psql("SELECT current_user", { user: role, password });
      assertStrictEquals(ok.code, 0, ok.stderr);
      assertStrictEquals(ok.stdout.trim(), role);
      const bad = await pg.psql("SELECT 1", { user: role, password: password + "x" });
      assertNotStrictEquals(bad.code, 0);
    });
  }
  await t.step("a verifier PostgreSQL computed matches with scramMatches", async () => {
    await pg.superSql(`SET log_statement = 'none'; CREATE ROLE server_made PASSWORD 'Zebra-42_x'`);
    const stored =
      (await pg.superSql(`SELECT rolpassword FROM pg_authid WHERE rolname = 'server_made'`))
        .trim();
    assert(await scramMatches("Zebra-42_x", stored));
    assert(!(await scramMatches("Zebra-42_y", stored)));
  });
  await t.step("no plaintext password in the server log", async () => {
    const log = await pg.readLog();
    for (const p of passwords) assert(!log.includes(p));
  });
});
