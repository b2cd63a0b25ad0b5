/**
 * The one table of time budgets integration tests wait with. A budget is what a user may expect
 * on a loaded 2-core CI machine, not how fast it usually is: tests poll for the outcome and
 * return as soon as it is there, so a generous budget costs nothing when things work.
 *
 * Slow machines scale every budget with `DBTETHER_TEST_TIMEOUT_SCALE` (e.g. `2`).
 *
 * ```ts
 * import { budget } from "./helpers/timeouts.ts";
 * await env.waitPhase("database", "orders", "Ready", { timeoutMs: budget("ready") });
 * ```
 */

const BUDGETS_MS = {
  /** A change the controller makes on its next reconcile (a status, an Event, a Secret). */
  react: 30_000,
  /** A resource reaches Ready from nothing (SQL, Secrets, finalizers). */
  ready: 60_000,
  /** A small backup or restore finishes (queued behind others included). */
  backup: 120_000,
  /** The program restarts (or a standby takes the lease) and converges again. */
  failover: 90_000,
  /** A dependency that was down for a while (storage, PostgreSQL) is back and used again. */
  recovery: 180_000,
  /** Many resources at once (tens of users, several backups) all converge. */
  bulk: 300_000,
} as const;

/** A budget's name. */
export type Budget = keyof typeof BUDGETS_MS;

function scale(): number {
  let raw: string | undefined;
  try {
    raw = Deno.env.get("DBTETHER_TEST_TIMEOUT_SCALE");
  } catch {
    raw = undefined;
  }
  const n = raw === undefined ? 1 : Number(raw);
  return Number.isFinite(n) && n > 0 ? n : 1;
}

/** The budget in milliseconds, scaled for this machine. */
export function budget(name: Budget): number {
  return Math.round(BUDGETS_MS[name] * scale());
}

/** Every budget, scaled (for reports that print each budget next to the measured value). */
export function budgets(): Record<Budget, number> {
  const s = scale();
  return Object.fromEntries(
    Object.entries(BUDGETS_MS).map(([k, v]) => [k, Math.round(v * s)]),
  ) as Record<Budget, number>;
}

/** One measured wait, next to the budget it was waited with. */
export interface Measurement {
  what: string;
  budget: Budget;
  ms: number;
}

const measurements: Measurement[] = [];

/**
 * Records how long a wait took against its budget. The first record makes the test process
 * print {@link budgetReport} when it ends (Deno shows it as post-test output), so each verify
 * file ends with its table of measured values next to their budgets.
 */
export function recordMeasurement(what: string, name: Budget, ms: number): void {
  if (!measurements.length) {
    globalThis.addEventListener("unload", () => console.log(budgetReport(measurements)));
  }
  measurements.push({ what, budget: name, ms });
}

/** A Markdown table: each measurement, its budget (scaled) and the share of it used. */
export function budgetReport(list: readonly Measurement[]): string {
  const rows = list.map((m) => {
    const b = budget(m.budget);
    return `| ${m.what} | ${(m.ms / 1000).toFixed(1)} s | ${m.budget} ${b / 1000} s | ${
      Math.round((100 * m.ms) / b)
    } % |`;
  });
  return ["BUDGETS", "| measured | value | budget | used |", "| --- | --- | --- | --- |", ...rows]
    .join("\n");
}
