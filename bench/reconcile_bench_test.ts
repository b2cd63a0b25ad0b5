import { assertEquals } from "../tests/helpers/assert.ts";
import { parseFloorFile, statementsOf } from "./reconcile_bench.ts";

const P = "2026-12-02 15:04:27.549 UTC";
const admin = (pid: number, db: string) =>
  `${P} [${pid}] dbtether_admin@${db} [dbtether@x/DBCluster/bench]`;

Deno.test("statementsOf keeps each session's transaction together, at its commit", () => {
  const log = [
    `${admin(1, "postgres")} LOG:  statement: begin`,
    `${admin(1, "postgres")} LOG:  statement: CREATE ROLE "a"`,
    `${admin(2, "app")} LOG:  execute <unnamed>: SELECT 1`,
    `${admin(1, "postgres")} LOG:  execute <unnamed>: commit`,
    `${P} [3] postgres@postgres [psql] LOG:  statement: SELECT count(*) FROM pg_stat_activity`,
    `${admin(2, "app")} LOG:  execute <unnamed>: `,
    "\tSELECT x FROM t",
    "\tWHERE n = $1 AND m = $2",
    `${admin(2, "app")} DETAIL:  Parameters: $1 = 'it''s', $2 = NULL`,
    `${admin(2, "app")} LOG:  connection authorized: user=dbtether_admin database=app`,
  ].join("\n");
  assertEquals(statementsOf(log), [
    { database: "app", sql: "SELECT 1" },
    { database: "postgres", sql: "begin" },
    { database: "postgres", sql: 'CREATE ROLE "a"' },
    { database: "postgres", sql: "commit" },
    { database: "app", sql: "\nSELECT x FROM t\nWHERE n = 'it''s' AND m = NULL" },
  ]);
});

Deno.test("a kept statement file reads back as written", () => {
  const text = '-- postgres\nCREATE DATABASE "a";\n-- a\n\nSELECT 1\nFROM t;\n-- a\ncommit;\n';
  assertEquals(parseFloorFile(text), [
    { database: "postgres", sql: 'CREATE DATABASE "a"' },
    { database: "a", sql: "\nSELECT 1\nFROM t" },
    { database: "a", sql: "commit" },
  ]);
});
