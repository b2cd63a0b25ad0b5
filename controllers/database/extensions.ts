/**
 * The extensions step of a Database reconcile: read what the server offers and the database has,
 * plan (postgres/plan_extensions.ts), and run each extension's statement on its own, so that one
 * the server refuses (not available, a version it lacks, not trusted for a non-superuser) does
 * not hide the others.
 */
import { RetryableError } from "../../lib/errors.ts";
import { mapPgError, type PgExecutor } from "../postgres/execute.ts";
import {
  extensionDifferences,
  type ExtensionSpec,
  observeExtensions,
  planExtensions,
} from "../postgres/plan_extensions.ts";
import type { ServerPool } from "../postgres/pool.ts";
import type { DatabaseOutcome } from "./status.ts";

/** The outcome of the step, and the schemas that differ from the spec (reported only). */
export type ExtensionsResult = NonNullable<DatabaseOutcome["extensions"]> & {
  differences: string[];
};

/** Creates or updates each of `o.extensions` in `o.database`. */
export async function ensureExtensions(
  exec: PgExecutor,
  pool: ServerPool,
  o: { database: string; extensions: readonly ExtensionSpec[]; signal: AbortSignal },
): Promise<ExtensionsResult> {
  const names = o.extensions.map((e) => e.name);
  const state = await pool.run(
    (sql) => observeExtensions(sql, names),
    { database: o.database, signal: o.signal },
  ).catch((e) => {
    throw mapPgError(e, { server: pool.endpoint });
  });
  const present: string[] = [];
  const failed: { name: string; message: string }[] = [];
  for (const step of planExtensions(o.extensions, { database: o.database, state })) {
    if (step.kind === "present") {
      present.push(step.name);
      continue;
    }
    if (step.kind === "refused") {
      failed.push({ name: step.name, message: step.message });
      continue;
    }
    try {
      await exec.apply([step.statement]);
      present.push(step.name);
    } catch (e) {
      if (!(e instanceof RetryableError) || e.reason === "ClusterUnreachable") throw e;
      const cause = e.cause instanceof Error ? e.cause.message : e.message;
      failed.push({ name: step.name, message: cause });
    }
  }
  return { present, failed, differences: extensionDifferences(o.extensions, state) };
}
