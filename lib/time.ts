/**
 * Kubernetes timestamps. `metav1.Time` is RFC 3339 with whole seconds; `metav1.MicroTime`
 * (Leases, events.k8s.io) carries microseconds. JavaScript dates have milliseconds, so the
 * micro form pads three zeros.
 */

/** `metav1.Time` of an instant: `2026-12-02T06:34:35Z`. */
export function kubeTime(at: number | Date): string {
  return new Date(at).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** `metav1.MicroTime` of an instant: `2026-12-02T06:34:35.123000Z`. */
export function kubeMicroTime(at: number | Date): string {
  return new Date(at).toISOString().replace("Z", "000Z");
}
