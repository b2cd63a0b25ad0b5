/**
 * When to rotate a password, and which role the Alternating strategy changes. Pure: the clock
 * reading comes in as `now`, and "come back later" goes out as a time the caller turns into
 * requeueAfter.
 */
import type { DatabaseUserSpec } from "../../crds/database_user.ts";
import { parseGoDuration } from "../../lib/duration.ts";
import { alternateUserName } from "../postgres/names.ts";

/** Why a new password is generated, declared once. */
export type PasswordReason = "Created" | "Scheduled" | "Requested" | "SecretDeleted";

type Rotation = NonNullable<DatabaseUserSpec["rotation"]>;
const DAY_MS = 86_400_000;

/** The rotation period in ms, or undefined when only on-demand rotation is configured. */
export function rotationPeriodMs(rotation: Rotation | undefined): number | undefined {
  if (!rotation) return undefined;
  if (rotation.days !== undefined) return rotation.days * DAY_MS;
  if (rotation.interval !== undefined) {
    const ms = parseGoDuration(rotation.interval, "rotation.interval");
    return ms > 0 ? ms : undefined;
  }
  return undefined;
}

export interface RotationInput {
  now: number;
  rotation: Rotation | undefined;
  /** When the current password was set (ms); undefined if unknown. */
  updatedAt: number | undefined;
  /** The value of the dbtether.io/rotate annotation now. */
  requested: string | undefined;
  /** The value last acted upon. */
  lastRequest: string | undefined;
  /** Secrets that held the current password and are gone now. */
  deletedSecrets: readonly string[];
}

export interface RotationDecision {
  /** Set when a new password is due now. */
  reason?: PasswordReason;
  /** When the next scheduled rotation is due (ms), if one is scheduled. */
  next?: number;
}

/** Whether to rotate now, and when the next scheduled rotation is. */
export function decideRotation(i: RotationInput): RotationDecision {
  const period = rotationPeriodMs(i.rotation);
  const next = period === undefined || i.updatedAt === undefined ? undefined : i.updatedAt + period;
  const at = next === undefined ? {} : { next };
  if (i.deletedSecrets.length > 0) return { reason: "SecretDeleted", ...at };
  if (i.requested !== undefined && i.requested !== "" && i.requested !== i.lastRequest) {
    return { reason: "Requested", ...at };
  }
  if (next !== undefined && next <= i.now) return { reason: "Scheduled", ...at };
  return at;
}

/** The login roles of a user: `<username>`, plus `<username>_b` with Alternating. */
export function loginRoles(username: string, alternating: boolean): string[] {
  return alternating ? [username, alternateUserName(username)] : [username];
}

/**
 * The role whose password a rotation changes: InPlace changes the active one; Alternating the
 * other one, so the credentials in the Secret keep working while it changes.
 */
export function rotationTarget(
  o: { username: string; active: string | undefined; alternating: boolean },
): string {
  const active = o.active ?? o.username;
  if (!o.alternating) return active;
  const b = alternateUserName(o.username);
  return active === b ? o.username : b;
}

/**
 * Longest wait before looking at a scheduled rotation again. Timers cannot wait longer than
 * 2^31-1 ms (24.8 days): a longer delay fires at once, which would turn `rotation.days: 30` into
 * a busy loop. Waking up once a day and deciding again costs nothing.
 */
export const MAX_ROTATION_WAIT_MS = 86_400_000;

/** How long to wait for a rotation due at `next`: at least 1 s, at most a day. */
export function untilRotation(next: number, now: number): number {
  return Math.min(MAX_ROTATION_WAIT_MS, Math.max(1000, next - now));
}
