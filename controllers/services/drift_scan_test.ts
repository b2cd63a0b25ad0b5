import { assertEquals } from "../../tests/helpers/assert.ts";
import type { Database } from "../../crds/database.ts";
import type { DatabaseUser } from "../../crds/database_user.ts";
import { databaseRoles } from "../postgres/names.ts";
import { drifted } from "./drift_scan.ts";

const ready = [{ type: "Ready", status: "True", reason: "Ready", message: "" }];

function db(name: string, o: { cluster?: string; ready?: boolean } = {}): Database {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Database",
    metadata: { name, namespace: "team" },
    spec: { clusterRef: { name: o.cluster ?? "main" } },
    status: {
      databaseName: name,
      phase: o.ready === false ? "Pending" : "Ready",
      conditions: o.ready === false ? [] : ready,
    },
  } as unknown as Database;
}

function user(name: string, o: { ready?: boolean; deleting?: boolean } = {}): DatabaseUser {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "DatabaseUser",
    metadata: {
      name,
      namespace: "team",
      ...(o.deleting ? { deletionTimestamp: "2026-12-01T00:00:00Z" } : {}),
    },
    spec: { databaseRef: { name: "a" } },
    status: { username: name, conditions: o.ready === false ? [] : ready },
  } as unknown as DatabaseUser;
}

const all = (dbs: string[]) => dbs.flatMap((d) => Object.values(databaseRoles(d)));

Deno.test("drifted: what was dropped on the server, of Ready objects on that server only", () => {
  const databases = [db("a"), db("b"), db("c", { ready: false }), db("d", { cluster: "other" })];
  const users = [
    user("u1"),
    user("u2"),
    user("u3", { ready: false }),
    user("u4", { deleting: true }),
  ];
  const clusterOfUser = () => "main";
  const o = { databases, users, clusterOfUser };

  // Nothing missing: nothing queued.
  const full = {
    roles: new Set([...all(["a", "b"]), "u1", "u2"]),
    databases: new Set(["a", "b"]),
  };
  assertEquals(drifted("main", full, o), { databases: [], users: [] });

  // A dropped database, a dropped level role, a dropped user role.
  const roles = new Set(full.roles);
  roles.delete(databaseRoles("b").readonly);
  roles.delete("u2");
  assertEquals(
    drifted("main", { roles, databases: new Set(["b"]) }, o),
    { databases: ["team/a", "team/b"], users: ["team/u2"] },
  );

  // Objects that are not Ready, being deleted, or on another server are never queued by the scan.
  assertEquals(
    drifted("main", { roles: new Set(), databases: new Set() }, o),
    { databases: ["team/a", "team/b"], users: ["team/u1", "team/u2"] },
  );
  assertEquals(
    drifted("main", { roles: new Set(), databases: new Set() }, {
      ...o,
      clusterOfUser: () => "other",
    }),
    { databases: ["team/a", "team/b"], users: [] },
  );
  assertEquals(drifted("other", { roles: new Set(), databases: new Set() }, o), {
    databases: ["team/d"],
    users: [],
  });
});
