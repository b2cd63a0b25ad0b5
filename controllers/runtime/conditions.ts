/**
 * Pure helpers for metav1.Condition lists: set a condition keeping lastTransitionTime unless
 * the status flips, and compare lists ignoring timestamps to decide whether to write.
 */
import type { Condition } from "./types.ts";
import { kubeTime } from "../../lib/time.ts";

export type { Condition };

export interface ConditionInput {
  type: string;
  status: boolean | "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

/** Returns a new list with `c` set; lastTransitionTime moves only when the status changes. */
export function setCondition(
  list: readonly Condition[] | undefined,
  c: ConditionInput,
  opts: { generation?: number | undefined; now: Date },
): Condition[] {
  const status = typeof c.status === "boolean" ? (c.status ? "True" : "False") : c.status;
  const old = list?.find((x) => x.type === c.type);
  const next: Condition = {
    type: c.type,
    status,
    reason: c.reason,
    message: truncate(c.message, 32_000),
    lastTransitionTime: old && old.status === status ? old.lastTransitionTime : kubeTime(opts.now),
  };
  if (opts.generation !== undefined) next.observedGeneration = opts.generation;
  const rest = (list ?? []).filter((x) => x.type !== c.type);
  return [...rest, next].sort((a, b) => a.type.localeCompare(b.type));
}

export function getCondition(
  list: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return list?.find((x) => x.type === type);
}

export function isTrue(list: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(list, type)?.status === "True";
}

/** The Event that reports a change of a condition. */
export interface ConditionEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

const NO_REASONS: ReadonlySet<string> = new Set();

/**
 * The Event for a change of condition `type` (its status or its reason) between two lists, or
 * undefined when it did not change. `True` is Normal; anything else is a Warning unless its
 * reason is in `normal` (a step on the way, such as Reconciling).
 */
export function conditionEvent(
  before: readonly Condition[] | undefined,
  after: readonly Condition[] | undefined,
  type: string,
  normal: ReadonlySet<string> = NO_REASONS,
): ConditionEvent | undefined {
  const a = getCondition(before, type);
  const b = getCondition(after, type);
  if (!b || (a && a.status === b.status && a.reason === b.reason)) return undefined;
  const ok = b.status === "True" || normal.has(b.reason);
  return { type: ok ? "Normal" : "Warning", reason: b.reason, message: b.message };
}

/** Deep equality of two JSON values, for "write status only when it changed". */
export function jsonEqual(a: unknown, b: unknown): boolean {
  return stableStringify(a) === stableStringify(b);
}

function stableStringify(v: unknown): string {
  if (v === undefined) return "undefined";
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(",")}]`;
  const entries = Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableStringify(x)}`).join(",")}}`;
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + "…";
}
