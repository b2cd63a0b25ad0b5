import { assertEquals } from "../../tests/helpers/assert.ts";
import { InvalidIdentifierError } from "../postgres/quote.ts";
import { ConflictError, RetryableError, TerminalError } from "../../lib/errors.ts";
import { failureOf } from "./failure.ts";
import { databaseFailure, READY_REASONS as DATABASE_REASONS } from "../database/reasons.ts";
import { CHECK_FAILURES, checkFailure } from "../dbcluster/reasons.ts";
import { pgdbFailure, READY_REASONS as PGDB_REASONS } from "../postgres_database/reasons.ts";
import { READY_REASONS as USER_REASONS, readyFailure } from "../database_user/status.ts";

Deno.test("failureOf maps every thrown value to one reason and retry decision", async (t) => {
  await t.step("a terminal error keeps its reason and is not retried", () => {
    assertEquals(failureOf(new TerminalError("InvalidSpec", "bad")), {
      reason: "InvalidSpec",
      message: "bad",
      terminal: true,
    });
  });
  await t.step("a retryable error keeps its reason and is retried", () => {
    assertEquals(failureOf(new RetryableError("ClusterUnreachable", "down")).terminal, false);
    assertEquals(failureOf(new ConflictError("stale")).reason, "Conflict");
  });
  await t.step("a subclass of TerminalError is renamed, not swallowed by its base", () => {
    const e = new InvalidIdentifierError("Cannot use role name: too long");
    assertEquals(failureOf(e).reason, "InvalidName");
    assertEquals(failureOf(e, { rename: { InvalidName: "InvalidUsername" } }), {
      reason: "InvalidUsername",
      message: "Cannot use role name: too long",
      terminal: true,
    });
  });
  await t.step("anything else is an unexpected, retried Error", () => {
    assertEquals(failureOf("boom"), { reason: "Error", message: "boom", terminal: false });
    assertEquals(failureOf(new TypeError("x"), { fallback: "Failed" }).reason, "Failed");
  });
});

Deno.test("each kind's closed list of reasons", async (t) => {
  const kinds = [
    { kind: "Database", list: DATABASE_REASONS, map: databaseFailure, fallback: "Error" },
    { kind: "PostgresDatabase", list: PGDB_REASONS, map: pgdbFailure, fallback: "Error" },
    { kind: "DBCluster", list: CHECK_FAILURES, map: checkFailure, fallback: "CheckFailed" },
    { kind: "DatabaseUser", list: USER_REASONS, map: readyFailure, fallback: "ReconcileFailed" },
  ] as const;
  for (const k of kinds) {
    await t.step(
      `${k.kind}: declared once, shared reasons kept, others become ${k.fallback}`,
      () => {
        const list: readonly string[] = k.list;
        assertEquals(new Set(list).size, list.length, "no reason is listed twice");
        for (const reason of ["ClusterUnreachable", "CredentialsMissing", "LeadershipLost"]) {
          assertEquals(k.map(new RetryableError(reason, "m")).reason, reason);
        }
        assertEquals(k.map(new RetryableError("SomethingNew", "m")), {
          reason: k.fallback,
          message: "m",
          terminal: false,
        });
        assertEquals(k.map(new TypeError("boom")).reason, k.fallback);
      },
    );
  }
  await t.step("refusals and API errors reach Database and PostgresDatabase as they are", () => {
    const refused = new TerminalError("DatabaseExistsUnmanaged", "exists");
    assertEquals(databaseFailure(refused), {
      reason: "DatabaseExistsUnmanaged",
      message: "exists",
      terminal: true,
    });
    assertEquals(pgdbFailure(new ConflictError("stale")).reason, "Conflict");
    assertEquals(pgdbFailure(new InvalidIdentifierError("bad")).reason, "InvalidName");
  });
});
