/**
 * Kubernetes timestamps. `metav1.Time` is RFC 3339 with whole seconds; `metav1.MicroTime`
 * (Leases, events.k8s.io) carries microseconds. JavaScript dates have milliseconds, so the
 * micro form pads three zeros.
 */
import { humanDuration } from "./format.ts";

/** `metav1.Time` of an instant: `2026-12-02T06:34:35Z`. */
export function kubeTime(at: number | Date): string {
  return new Date(at).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** `metav1.MicroTime` of an instant: `2026-12-02T06:34:35.123000Z`. */
export function kubeMicroTime(at: number | Date): string {
  return new Date(at).toISOString().replace("Z", "000Z");
}

/**
 * The end of a job at `now`: `completedAt`, and how long it ran when it was running since
 * `startedAt` (a job refused before it started has no duration).
 */
export function jobEnd(
  o: { startedAt?: string | undefined; running: boolean; now: number },
): { completedAt: string; duration?: string } {
  const started = o.startedAt ? Date.parse(o.startedAt) : NaN;
  return {
    completedAt: kubeTime(o.now),
    ...(o.running && Number.isFinite(started) ? { duration: humanDuration(o.now - started) } : {}),
  };
}
