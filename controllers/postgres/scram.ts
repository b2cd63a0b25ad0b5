/**
 * Passwords: generation from the crypto RNG, and SCRAM-SHA-256 verifiers computed in-process
 * (RFC 5802 / RFC 7677, in the form PostgreSQL stores in pg_authid), so a plaintext password never
 * reaches the server, its log or pg_stat_statements.
 */

/** PostgreSQL's default `scram_iterations`. */
export const SCRAM_ITERATIONS = 4096;
const SALT_BYTES = 16;

/** Lowest and highest password length a spec may ask for. */
export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 64;

/**
 * Password characters: letters, digits, `-` and `_`. None needs quoting in shells, YAML or
 * environment files, and none is special in a URI (URIs are still built with escaping).
 */
export const PASSWORD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Options of {@link generatePassword}. */
export interface GeneratePasswordOptions {
  alphabet?: string;
  /** Source of random bytes; the crypto RNG by default (tests may inject one). */
  random?: (bytes: Uint8Array<ArrayBuffer>) => void;
}

/**
 * A random password of `length` characters (12–64), each drawn uniformly from the alphabet by
 * rejection sampling. It contains at least one upper-case letter, one lower-case letter and one
 * digit, which password policies of managed servers ask for; a draw without them is redrawn
 * whole, which keeps the result uniform over the passwords that qualify.
 */
export function generatePassword(length = 16, opts: GeneratePasswordOptions = {}): string {
  if (!Number.isInteger(length) || length < PASSWORD_MIN_LENGTH || length > PASSWORD_MAX_LENGTH) {
    throw new RangeError(
      `Invalid password length ${length}: must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH}`,
    );
  }
  const alphabet = opts.alphabet ?? PASSWORD_ALPHABET;
  if (alphabet.length < 2 || alphabet.length > 256) {
    throw new RangeError("Invalid password alphabet: needs 2 to 256 characters");
  }
  const random = opts.random ?? ((b: Uint8Array<ArrayBuffer>) => crypto.getRandomValues(b));
  const policy = alphabet === PASSWORD_ALPHABET;
  for (;;) {
    const pw = draw(length, alphabet, random);
    if (!policy || (/[A-Z]/.test(pw) && /[a-z]/.test(pw) && /[0-9]/.test(pw))) return pw;
  }
}

function draw(length: number, alphabet: string, random: (b: Uint8Array<ArrayBuffer>) => void) {
  // Bytes at or above `limit` would favour the first characters of the alphabet: reject them.
  const limit = 256 - (256 % alphabet.length);
  const out: string[] = [];
  const buf = new Uint8Array(length * 2);
  while (out.length < length) {
    random(buf);
    for (const b of buf) {
      if (b >= limit) continue;
      out.push(alphabet[b % alphabet.length]!);
      if (out.length === length) break;
    }
  }
  return out.join("");
}

/** Options of {@link scramVerifier}. */
export interface ScramOptions {
  iterations?: number;
  /** Fixed salt, for test vectors only; random by default. */
  salt?: Uint8Array<ArrayBuffer>;
}

const encoder = new TextEncoder();

/**
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password`, the exact form
 * `CREATE ROLE ... PASSWORD '<verifier>'` stores as is.
 */
export async function scramVerifier(password: string, opts: ScramOptions = {}): Promise<string> {
  const iterations = opts.iterations ?? SCRAM_ITERATIONS;
  const salt = opts.salt ?? crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const { storedKey, serverKey } = await scramKeys(password, { salt, iterations });
  return `SCRAM-SHA-256$${iterations}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

/** Whether `password` matches a stored verifier (for tests and checks of known verifiers). */
export async function scramMatches(password: string, verifier: string): Promise<boolean> {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  if (!m) return false;
  const salt = unb64(m[2]!);
  const { storedKey } = await scramKeys(password, { salt, iterations: Number(m[1]) });
  return b64(storedKey) === m[3];
}

async function scramKeys(
  password: string,
  o: { salt: Uint8Array<ArrayBuffer>; iterations: number },
): Promise<{ storedKey: Uint8Array<ArrayBuffer>; serverKey: Uint8Array<ArrayBuffer> }> {
  const base = await crypto.subtle.importKey(
    "raw",
    encoder.encode(saslPrep(password)),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const salted = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: o.salt, iterations: o.iterations },
    base,
    256,
  );
  const hmacKey = await crypto.subtle.importKey(
    "raw",
    salted,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const clientKey = await crypto.subtle.sign("HMAC", hmacKey, encoder.encode("Client Key"));
  const serverKey = await crypto.subtle.sign("HMAC", hmacKey, encoder.encode("Server Key"));
  const storedKey = await crypto.subtle.digest("SHA-256", clientKey);
  return { storedKey: new Uint8Array(storedKey), serverKey: new Uint8Array(serverKey) };
}

// PostgreSQL runs the password through SASLprep (RFC 4013) before hashing and falls back to the
// raw bytes when the password is not valid for it. Generated passwords are ASCII, where SASLprep
// is the identity; for other input this covers the mapping and normalisation steps, which is what
// changes the bytes of ordinary text, and leaves prohibited-character passwords raw like the server.
function saslPrep(password: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const mapped = password
    .replace(/[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/g, " ")
    .replace(/[\u00ad\u034f\u1806\u180b-\u180d\u200c\u200d\u2060\ufe00-\ufe0f\ufeff]/g, "");
  const normal = mapped.normalize("NFKC");
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\ue000-\uf8ff\ufff9-\ufffd]/.test(normal)) return password;
  return normal;
}

function b64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function unb64(s: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}
