/**
 * psql's restricted mode for plain restores. A plain dump is a psql script, and a psql script
 * may hold client meta-commands (`\!` runs a shell command, `\o |cmd`, `\copy ... to program`)
 * that would run on the operator's host. psql 13.22, 14.19, 15.14, 16.10, 17.6 and 18 have
 * `\restrict <key>`: after it, every meta-command except `\unrestrict <key>` is refused (an
 * error, so ON_ERROR_STOP ends the restore). We start every restore with `\restrict` and a
 * random key of our own, before the first byte of the dump, so no line of the dump can leave
 * that mode: it cannot know the key.
 *
 * pg_dump of those versions writes its own `\restrict <key>` into the leading comment block
 * and a matching `\unrestrict <key>` as the last command; psql would refuse both in our mode.
 * {@link restrictedScript} drops exactly those two lines and nothing else: a `\restrict` line
 * only while still in the leading blank/comment block, and an `\unrestrict` line only when
 * nothing but blank or comment lines follow it. Every other line reaches psql untouched (a COPY
 * data line may legitimately start with `\r`), so dropping can only remove the dump's own
 * commands, never make psql run something.
 */

/** psql versions that have `\restrict`, for messages. */
export const RESTRICT_VERSIONS = "13.22, 14.19, 15.14, 16.10, 17.6 or 18";

const KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A random key for `\restrict` (alphanumeric, like pg_dump's). */
export function restrictKey(length = 40): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length * 2));
  const out: string[] = [];
  // 248 = 4 × 62: bytes at or above it would favour the first characters.
  for (const b of bytes) if (b < 248 && out.length < length) out.push(KEY_ALPHABET[b % 62]!);
  return out.length === length ? out.join("") : restrictKey(length);
}

const NL = 0x0a;
const BACKSLASH = 0x5c;
/** A line longer than this cannot be pg_dump's `\restrict`/`\unrestrict` line. */
const MAX_COMMAND_LINE = 1024;
/** Bytes held while deciding whether an `\unrestrict` line is the last command. */
const MAX_HELD = 1 << 20;

const decoder = new TextDecoder();
const RESTRICT_LINE = /^\\restrict[ \t]+[A-Za-z0-9]+[ \t]*\r?$/;
const UNRESTRICT_LINE = /^\\unrestrict[ \t]+[A-Za-z0-9]+[ \t]*\r?$/;
const UNRESTRICT_PREFIX = new TextEncoder().encode("\\unrestrict");

function text(line: Uint8Array): string {
  return line.length > MAX_COMMAND_LINE ? "" : decoder.decode(line);
}

/** A line (without its newline) that is blank or a `--` comment. */
function inert(line: Uint8Array): boolean {
  let i = 0;
  while (i < line.length && (line[i] === 0x20 || line[i] === 0x09 || line[i] === 0x0d)) i++;
  return i === line.length || (line[i] === 0x2d && line[i + 1] === 0x2d);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Whether `bytes` (a line start) is or may become `\unrestrict...` once more bytes arrive. */
function maybeUnrestrict(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, UNRESTRICT_PREFIX.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== UNRESTRICT_PREFIX[i]) return false;
  return true;
}

/**
 * The script psql reads: `\restrict <key>`, then the dump without its own `\restrict` and
 * final `\unrestrict` lines (see the module comment).
 */
export function restrictedScript(
  dump: ReadableStream<Uint8Array>,
  key: string,
): ReadableStream<Uint8Array> {
  if (!/^[A-Za-z0-9]{16,}$/.test(key)) throw new RangeError("Invalid restrict key");
  const filter = new RestrictFilter();
  const first = new TextEncoder().encode(`\\restrict ${key}\n`);
  return dump.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start: (c) => c.enqueue(first),
      transform: (chunk, c) => filter.push(chunk, (b) => b.length && c.enqueue(b)),
      flush: (c) => filter.end((b) => b.length && c.enqueue(b)),
    }),
  );
}

type Emit = (bytes: Uint8Array) => unknown;

/** The line filter behind {@link restrictedScript}; exported for tests. */
export class RestrictFilter {
  #state: "head" | "body" | "tail" = "head";
  /** head: the partial line; tail: everything held since the `\unrestrict` line. */
  #pending: Uint8Array = new Uint8Array(0);
  #droppedRestrict = false;
  /** body: whether the next byte starts a line. */
  #atLineStart = true;

  push(chunk: Uint8Array, emit: Emit): void {
    let rest = chunk;
    while (rest.length) {
      if (this.#state === "head") rest = this.#head(rest, emit);
      else if (this.#state === "body") rest = this.#body(rest, emit);
      else rest = this.#tail(rest, emit);
    }
  }

  end(emit: Emit): void {
    const held = this.#pending;
    this.#pending = new Uint8Array(0);
    if (this.#state === "head") {
      if (this.#droppedRestrict || !RESTRICT_LINE.test(text(held))) emit(held);
      return;
    }
    if (this.#state !== "tail") return;
    const firstEnd = held.indexOf(NL);
    const first = firstEnd < 0 ? held : held.subarray(0, firstEnd);
    const after = firstEnd < 0 ? new Uint8Array(0) : held.subarray(firstEnd + 1);
    // Only blank and comment lines followed the `\unrestrict`: it was the last command.
    if (UNRESTRICT_LINE.test(text(first)) && splitLines(after).every(inert)) emit(after);
    else emit(held);
  }

  #head(chunk: Uint8Array, emit: Emit): Uint8Array {
    const buf = concat(this.#pending, chunk);
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NL, start);
      if (nl < 0) break;
      const line = buf.subarray(start, nl);
      if (!this.#droppedRestrict && RESTRICT_LINE.test(text(line))) {
        emit(buf.subarray(0, start));
        this.#droppedRestrict = true;
        this.#pending = new Uint8Array(0);
        return buf.subarray(nl + 1);
      }
      if (!inert(line)) {
        // The first command: from here on, the body rules apply.
        emit(buf.subarray(0, start));
        this.#state = "body";
        this.#pending = new Uint8Array(0);
        this.#atLineStart = true;
        return buf.subarray(start);
      }
      start = nl + 1;
    }
    emit(buf.subarray(0, start));
    const partial = buf.subarray(start);
    if (partial.length > MAX_COMMAND_LINE) {
      // A very long first line: not a comment we need to look at.
      this.#state = "body";
      this.#pending = new Uint8Array(0);
      this.#atLineStart = true;
      return partial;
    }
    this.#pending = partial.slice();
    return new Uint8Array(0);
  }

  #body(chunk: Uint8Array, emit: Emit): Uint8Array {
    let from = 0;
    for (;;) {
      const i = chunk.indexOf(BACKSLASH, from);
      if (i < 0) {
        emit(chunk);
        this.#atLineStart = chunk[chunk.length - 1] === NL;
        return new Uint8Array(0);
      }
      const lineStart = i === 0 ? this.#atLineStart : chunk[i - 1] === NL;
      if (lineStart && maybeUnrestrict(chunk.subarray(i))) {
        emit(chunk.subarray(0, i));
        this.#state = "tail";
        this.#pending = new Uint8Array(0);
        return chunk.subarray(i);
      }
      from = i + 1;
    }
  }

  #tail(chunk: Uint8Array, emit: Emit): Uint8Array {
    const held = concat(this.#pending, chunk);
    const firstEnd = held.indexOf(NL);
    const first = firstEnd < 0 ? held : held.subarray(0, firstEnd);
    const candidate = firstEnd < 0
      ? first.length <= MAX_COMMAND_LINE && maybeUnrestrict(first)
      : UNRESTRICT_LINE.test(text(first));
    if (!candidate) return this.#release(held, emit);
    // Every complete line after the first must be blank or a comment to keep holding.
    let start = firstEnd < 0 ? held.length : firstEnd + 1;
    for (;;) {
      const nl = held.indexOf(NL, start);
      if (nl < 0) break;
      if (!inert(held.subarray(start, nl))) return this.#release(held, emit);
      start = nl + 1;
    }
    if (held.length > MAX_HELD) return this.#release(held, emit);
    this.#pending = held.slice();
    return new Uint8Array(0);
  }

  /** Not the last command after all: everything held goes to psql, then body rules again. */
  #release(held: Uint8Array, emit: Emit): Uint8Array {
    const firstEnd = held.indexOf(NL);
    this.#pending = new Uint8Array(0);
    this.#state = "body";
    if (firstEnd < 0) {
      emit(held);
      this.#atLineStart = false;
      return new Uint8Array(0);
    }
    emit(held.subarray(0, firstEnd + 1));
    this.#atLineStart = true;
    return held.subarray(firstEnd + 1);
  }
}

function splitLines(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (;;) {
    const nl = bytes.indexOf(NL, start);
    if (nl < 0) {
      if (start < bytes.length) out.push(bytes.subarray(start));
      return out;
    }
    out.push(bytes.subarray(start, nl));
    start = nl + 1;
  }
}

const support = new Map<string, boolean>();

/** Whether the psql at `path` knows `\restrict` (from `psql --help=commands`; cached). */
export async function psqlHasRestrict(path: string): Promise<boolean> {
  const known = support.get(path);
  if (known !== undefined) return known;
  let has = false;
  try {
    const out = await new Deno.Command(path, {
      args: ["--help=commands"],
      clearEnv: true,
      env: { LC_ALL: "C", PAGER: "cat", PSQL_PAGER: "cat" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    has = out.success && /^\s*\\restrict\b/m.test(decoder.decode(out.stdout));
  } catch {
    // not there or not executable: the restore reports it when it starts the tool
  }
  support.set(path, has);
  return has;
}
