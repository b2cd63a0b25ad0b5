/**
 * Whether a failed connect says something about the whole server, which the DBCluster's status
 * should show at once, or only about the one database it was for.
 *
 * A connect goes to one database, and some refusals are that database's own: it does not exist
 * (yet, or any more: 3D000), it does not accept connections (55000: `allowConnections: false`,
 * a restore's swap), or pg_hba.conf has no entry for it (28000). A tenant controls all three for
 * their database, so none of them may make the shared DBCluster look down. Everything else (the
 * socket refused or reset, a timeout, TLS, the password, too many connections, shutting down) is
 * the server's.
 */
const PER_DATABASE_SQLSTATES = new Set(["3D000", "55000", "28000"]);

/** True when `e`, from a connect attempt, means the server as a whole cannot be used. */
export function serverWideFailure(e: unknown): boolean {
  const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
  return !PER_DATABASE_SQLSTATES.has(code);
}

/** Called when a pool's server becomes unreachable, or reachable again after being so. */
export type ReachabilityListener = (reachable: boolean) => void;
