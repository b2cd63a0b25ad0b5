/** Network failures, named once for every client (PostgreSQL, the storage SDKs). */

/** Node's codes for a connection that could not be made or was lost on the way. */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
]);

/** The network codes plus a client's own names for the same (a driver's or an SDK's). */
export function unreachableCodes(...extra: string[]): ReadonlySet<string> {
  return new Set([...NETWORK_ERROR_CODES, ...extra]);
}
