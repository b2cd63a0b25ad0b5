/**
 * `{{ .Var }}` templates for BackupStorage's pathTemplate and Backup's filenameTemplate.
 * Deliberately tiny: variables only, no functions or pipelines, so a template can be validated
 * when the resource is admitted and renders the same way on every run.
 */
import { DbtetherError } from "../lib/errors.ts";
import type { CompressionAlgorithm } from "./compression.ts";

/** The variables a template may reference. */
export const TEMPLATE_VARIABLES = [
  "ClusterName",
  "DatabaseName",
  "Namespace",
  "Timestamp",
  "Year",
  "Month",
  "Day",
  "RunID",
] as const;

export type TemplateVariable = typeof TEMPLATE_VARIABLES[number];
export type TemplateValues = Record<TemplateVariable, string>;

export const DEFAULT_PATH_TEMPLATE = "{{ .ClusterName }}/{{ .DatabaseName }}";
/**
 * The filename of a Backup that sets none, per dump format: unique per Backup (RunID comes
 * from its uid; Timestamp alone has one-second resolution, and stored objects are never
 * overwritten), `.sql.gz` for gzipped SQL, `.sql.zst` for zstd, `.dump` for pg_dump's
 * compressed archive (whichever codec pg_dump used inside).
 */
export const DEFAULT_FILENAME_TEMPLATES = {
  plain: "{{ .Timestamp }}-{{ .RunID }}.sql.gz",
  plainZstd: "{{ .Timestamp }}-{{ .RunID }}.sql.zst",
  custom: "{{ .Timestamp }}-{{ .RunID }}.dump",
} as const;

/** The filename template of a Backup that sets none. */
export function defaultFilenameTemplate(
  format: "plain" | "custom" = "plain",
  algorithm: CompressionAlgorithm = "gzip",
): string {
  if (format === "custom") return DEFAULT_FILENAME_TEMPLATES.custom;
  return algorithm === "zstd"
    ? DEFAULT_FILENAME_TEMPLATES.plainZstd
    : DEFAULT_FILENAME_TEMPLATES.plain;
}

/**
 * A template that cannot be used; `message` says which part and why. Terminal: only a change
 * of the spec (the template, or what it renders) fixes it.
 */
export class TemplateError extends DbtetherError<"InvalidTemplate"> {
  override name = "TemplateError";
  constructor(message: string, options?: ErrorOptions) {
    super("InvalidTemplate", message, { ...options, terminal: true });
  }
}

const KNOWN = new Set<string>(TEMPLATE_VARIABLES);
// `{{ .Name }}` with optional inner whitespace; anything else between braces is an error.
const ACTION = /\{\{(.*?)\}\}/g;
const VARIABLE = /^\s*\.([A-Za-z][A-Za-z0-9_]*)\s*$/;

type Part = { text: string } | { variable: TemplateVariable };

function parse(template: string): Part[] {
  const parts: Part[] = [];
  let last = 0;
  for (const m of template.matchAll(ACTION)) {
    const inner = m[1] ?? "";
    const v = VARIABLE.exec(inner)?.[1];
    if (v === undefined) {
      throw new TemplateError(
        `Invalid template "${template}": "{{${inner}}}" is not of the form {{ .Variable }}`,
      );
    }
    if (!KNOWN.has(v)) {
      throw new TemplateError(
        `Invalid template "${template}": unknown variable ".${v}" (known: ${
          TEMPLATE_VARIABLES.join(", ")
        })`,
      );
    }
    parts.push({ text: template.slice(last, m.index) });
    parts.push({ variable: v as TemplateVariable });
    last = m.index + m[0].length;
  }
  const rest = template.slice(last);
  if (rest.includes("{{") || rest.includes("}}")) {
    throw new TemplateError(`Invalid template "${template}": unbalanced "{{" or "}}"`);
  }
  parts.push({ text: rest });
  return parts;
}

/** Throws TemplateError when the template references an unknown variable or is malformed. */
export function validateTemplate(template: string): void {
  parse(template);
}

/** Renders a template; the result is not yet checked as a key (see {@link renderBackupKey}). */
export function renderTemplate(template: string, values: TemplateValues): string {
  return parse(template)
    .map((p) => ("text" in p ? p.text : values[p.variable]))
    .join("");
}

/** The time-derived variables, in UTC: Timestamp is `YYYYMMDD-HHMMSS`. */
export function timeValues(at: Date): Pick<TemplateValues, "Timestamp" | "Year" | "Month" | "Day"> {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const Year = p(at.getUTCFullYear(), 4);
  const Month = p(at.getUTCMonth() + 1);
  const Day = p(at.getUTCDate());
  const time = `${p(at.getUTCHours())}${p(at.getUTCMinutes())}${p(at.getUTCSeconds())}`;
  return { Timestamp: `${Year}${Month}${Day}-${time}`, Year, Month, Day };
}

/**
 * Throws TemplateError unless `key` is a safe relative object key: non-empty, no leading `/`,
 * no empty, `.` or `..` segment, no backslash or control character.
 */
export function assertSafeKey(key: string): void {
  const bad = (why: string) => new TemplateError(`Invalid object key "${key}": ${why}`);
  if (key === "") throw bad("it is empty");
  if (key.startsWith("/")) throw bad("it must not start with /");
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(key)) throw bad("it contains a control character or \\");
  for (const seg of key.split("/")) {
    if (seg === "") throw bad("it contains an empty path segment");
    if (seg === "." || seg === "..") throw bad(`it contains a "${seg}" path segment`);
  }
}

/** Options of {@link renderBackupKey}. */
export interface BackupKeyOptions {
  pathTemplate?: string;
  /** Default: {@link DEFAULT_FILENAME_TEMPLATES} of `format`. */
  filenameTemplate?: string | undefined;
  /** The dump format and codec pick the default filename. Default plain, gzip. */
  format?: "plain" | "custom" | undefined;
  compression?: CompressionAlgorithm | undefined;
  clusterName: string;
  databaseName: string;
  namespace: string;
  runId: string;
  /** When the backup was scheduled or created; Timestamp/Year/Month/Day derive from it. */
  at: Date;
}

/** `<rendered pathTemplate>/<rendered filenameTemplate>`, checked with {@link assertSafeKey}. */
export function renderBackupKey(opts: BackupKeyOptions): string {
  const values: TemplateValues = {
    ClusterName: opts.clusterName,
    DatabaseName: opts.databaseName,
    Namespace: opts.namespace,
    RunID: opts.runId,
    ...timeValues(opts.at),
  };
  const dir = renderTemplate(opts.pathTemplate ?? DEFAULT_PATH_TEMPLATE, values)
    .replace(/^\/+|\/+$/g, "");
  const file = renderTemplate(
    opts.filenameTemplate ?? defaultFilenameTemplate(opts.format, opts.compression),
    values,
  );
  const key = dir === "" ? file : `${dir}/${file}`;
  assertSafeKey(key);
  return key;
}
