/**
 * The last lines a child process wrote to stderr, bounded in lines and line length, redacted.
 * Drained continuously so the child never blocks on a full stderr pipe.
 */

/** Replaces each secret, and anything shaped like `password=...`, with `***`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length > 0) out = out.replaceAll(s, "***");
  return out.replace(/(password\s*[=:]\s*)('[^']*'|"[^"]*"|\S+)/gi, "$1***");
}

/** Options of {@link StderrTail}. */
export interface StderrTailOptions {
  /** How many lines to keep; default 20. */
  lines?: number;
  /** Longest line kept, in characters; longer lines are cut; default 1000. */
  lineLength?: number;
  secrets?: readonly string[];
  /** Called with each complete, redacted line (e.g. to log it). */
  onLine?: (line: string) => void;
}

/** A ring buffer of the last stderr lines. */
export class StderrTail {
  readonly #max: number;
  readonly #len: number;
  readonly #secrets: readonly string[];
  readonly #onLine: ((line: string) => void) | undefined;
  #lines: string[] = [];
  #partial = "";

  constructor(opts: StderrTailOptions = {}) {
    this.#max = opts.lines ?? 20;
    this.#len = opts.lineLength ?? 1000;
    this.#secrets = opts.secrets ?? [];
    this.#onLine = opts.onLine;
  }

  /** Reads the stream to its end; never throws (a broken stderr must not fail the backup). */
  async drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    try {
      for await (const chunk of stream) this.push(dec.decode(chunk, { stream: true }));
    } catch {
      // the child is gone; keep what we have
    }
    this.push(dec.decode());
    this.end();
  }

  push(text: string): void {
    const parts = (this.#partial + text).split("\n");
    this.#partial = parts.pop() ?? "";
    // Bound a pathological line without a newline.
    if (this.#partial.length > this.#len * 4) this.#partial = this.#partial.slice(-this.#len * 4);
    for (const p of parts) this.#add(p);
  }

  end(): void {
    if (this.#partial !== "") this.#add(this.#partial);
    this.#partial = "";
  }

  #add(raw: string): void {
    const trimmed = raw.replace(/\r$/, "");
    if (trimmed.trim() === "") return;
    let line = redact(trimmed, this.#secrets);
    if (line.length > this.#len) line = line.slice(0, this.#len) + "…";
    this.#lines.push(line);
    if (this.#lines.length > this.#max) this.#lines.shift();
    this.#onLine?.(line);
  }

  /** The kept lines, oldest first. */
  lines(): string[] {
    return [...this.#lines];
  }

  /** The kept lines joined for an error message, or "" when there are none. */
  text(): string {
    return this.#lines.join("\n");
  }
}
