/**
 * PostgreSQL's and the managed services' naming limits, shared by the SQL module (quote.ts) and
 * the CRDs' admission rules (crds/kind.ts), so admission and SQL never disagree.
 */

/** Names PostgreSQL or a managed service reserves; compared case-insensitively. */
export const RESERVED_NAMES = [
  "postgres",
  "template0",
  "template1",
  "public",
  "none",
  "current_user",
  "session_user",
  "current_role",
  "user",
  "all",
  "rdsadmin",
] as const;

/** Prefixes PostgreSQL (`pg_`) and Amazon RDS (`rds_`) reserve for their own roles. */
export const RESERVED_PREFIXES = ["pg_", "rds_"] as const;

/** The byte length PostgreSQL keeps of an identifier (NAMEDATALEN - 1). */
export const MAX_IDENTIFIER_BYTES = 63;
