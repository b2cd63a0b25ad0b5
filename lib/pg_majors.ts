/**
 * The PostgreSQL majors dbtether supports, oldest first: the tests run servers of each, the
 * image carries client tools of each (a test compares the Dockerfile with this list).
 */
export const SUPPORTED_PG_MAJORS = [13, 14, 15, 16, 17, 18] as const;

/** One of {@link SUPPORTED_PG_MAJORS}. */
export type PgMajor = typeof SUPPORTED_PG_MAJORS[number];

/** The newest supported major: the tests' and the dev environment's default server. */
export const NEWEST_PG_MAJOR: PgMajor = SUPPORTED_PG_MAJORS[SUPPORTED_PG_MAJORS.length - 1]!;

/** Whether `n` is a supported major. */
export function isSupportedMajor(n: number): n is PgMajor {
  return (SUPPORTED_PG_MAJORS as readonly number[]).includes(n);
}
