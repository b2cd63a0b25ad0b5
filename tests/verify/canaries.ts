/**
 * Secret canaries for the leak test: every password the run generates or reads is registered,
 * and `scan` looks for each of them in a set of texts (logs, Events, statuses, metrics, the
 * server log), raw, URL-encoded and base64-encoded at every byte alignment (a password inside a
 * larger encoded value, e.g. a base64 JSON document, is found too).
 */

/** Where a canary was found. */
export interface Finding {
  canary: string;
  form: string;
  source: string;
}

const enc = new TextEncoder();

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/**
 * The strings `value` turns into when encoded: raw, URL-encoded, and the base64 (standard and
 * URL alphabet) characters that depend only on `value`, for each of the three byte offsets it
 * may start at inside a longer encoded text.
 */
export function encodedForms(value: string): Map<string, string> {
  const forms = new Map<string, string>([
    ["raw", value],
    ["url-encoded", encodeURIComponent(value)],
  ]);
  const bytes = enc.encode(value);
  for (let k = 0; k < 3; k++) {
    const padded = new Uint8Array(k + bytes.length);
    padded.set(bytes, k);
    // The first group mixes in the k bytes before; the last group mixes in what follows.
    const full = base64(padded).replace(/=+$/, "");
    const inner = full.slice(k === 0 ? 0 : 4, full.length - 4);
    if (inner.length < 8) continue;
    forms.set(`base64@${k}`, inner);
    forms.set(`base64url@${k}`, inner.replaceAll("+", "-").replaceAll("/", "_"));
  }
  return forms;
}

/** The registered canaries of one run. */
export class Canaries {
  readonly #values = new Map<string, string>();

  /** Registers `value` under `label` (the first label wins); too short values are refused. */
  add(label: string, value: string | undefined): void {
    if (value === undefined || value === "") return;
    if (value.length < 8) throw new Error(`Canary ${label} is too short to scan for`);
    if (!this.#values.has(value)) this.#values.set(value, label);
  }

  get size(): number {
    return this.#values.size;
  }

  /** Every occurrence of every canary, in any form, in `sources` (name → text). */
  scan(sources: Record<string, string>): Finding[] {
    const out: Finding[] = [];
    for (const [value, label] of this.#values) {
      for (const [form, text] of encodedForms(value)) {
        for (const [source, body] of Object.entries(sources)) {
          if (body.includes(text)) out.push({ canary: label, form, source });
        }
      }
    }
    return out;
  }
}
