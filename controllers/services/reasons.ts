/**
 * The reasons every kind that resolves a DBCluster and sends SQL to its server can report, as one
 * list: a kind's own list spreads it, so a reason a module adds reaches every such kind.
 */
import { REFUSAL_REASONS } from "../postgres/claims.ts";
import { PG_FAILURE_REASONS } from "../postgres/execute.ts";
import { RESOLVER_REASONS } from "./resolver.ts";

/** The resolver's refusals, the driver's failures, the claims' refusals, and a lost lease. */
export const SERVER_WORK_REASONS = [
  ...RESOLVER_REASONS,
  ...PG_FAILURE_REASONS,
  ...REFUSAL_REASONS,
  "LeadershipLost",
] as const;
