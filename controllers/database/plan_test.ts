import { assertEquals } from "../../tests/helpers/assert.ts";
import type { Database } from "../../crds/database.ts";
import type { DatabaseUser } from "../../crds/database_user.ts";
import { makeUser } from "../database_user/fixtures_test_util.ts";
import { type ClusterState, databaseNameOf, FINALIZER, planDatabase } from "./plan.ts";

function db(o: {
  name?: string;
  spec?: Partial<Database["spec"]>;
  finalizer?: boolean;
  deleting?: boolean;
  annotations?: Record<string, string>;
} = {}): Database {
  return {
    apiVersion: "dbtether.io/v1alpha1",
    kind: "Database",
    metadata: {
      name: o.name ?? "my-app-db",
      namespace: "team",
      uid: "u1",
      generation: 1,
      ...(o.finalizer ? { finalizers: [FINALIZER] } : {}),
      ...(o.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
      ...(o.annotations ? { annotations: o.annotations } : {}),
    },
    spec: {
      clusterRef: { name: "main" },
      deletionPolicy: "Retain",
      revokePublicConnect: true,
      ...o.spec,
    },
  };
}

const ready: ClusterState = { kind: "ready", adminRole: "dbtether_admin" };
const marker = { namespace: "team", name: "my-app-db" };

Deno.test("databaseNameOf", async (t) => {
  const table: [string, Database, string][] = [
    ["default replaces every hyphen", db({ name: "a-b-c" }), "a_b_c"],
    ["explicit name kept as written", db({ spec: { databaseName: "My-App" } }), "My-App"],
  ];
  for (const [name, d, want] of table) {
    await t.step(name, () => assertEquals(databaseNameOf(d), want));
  }
});

Deno.test("planDatabase", async (t) => {
  const ensure = (o: { forceAdopt?: boolean; revoke?: boolean } = {}) => ({
    kind: "ensureDatabase",
    spec: {
      database: "my_app_db",
      marker,
      revokePublicConnect: o.revoke ?? true,
      forceAdopt: o.forceAdopt ?? false,
    },
  });
  const table: [string, Database, ClusterState, unknown][] = [
    [
      "new object: finalizer before any SQL",
      db(),
      ready,
      { actions: [{ kind: "addFinalizer" }, ensure()] },
    ],
    ["converged object: no finalizer write", db({ finalizer: true }), ready, {
      actions: [ensure()],
    }],
    [
      "extensions after the database",
      db({ finalizer: true, spec: { extensions: ["pg_trgm"] } }),
      ready,
      {
        actions: [ensure(), {
          kind: "ensureExtensions",
          database: "my_app_db",
          extensions: [{ name: "pg_trgm" }],
        }],
      },
    ],
    [
      "force-adopt annotation",
      db({ finalizer: true, annotations: { "dbtether.io/force-adopt": "true" } }),
      ready,
      { actions: [ensure({ forceAdopt: true })] },
    ],
    [
      "force-adopt with the DBCluster's consent passes it on",
      db({ finalizer: true, annotations: { "dbtether.io/force-adopt": "true" } }),
      { ...ready, consent: { granted: true, how: "x" } },
      {
        actions: [{
          kind: "ensureDatabase",
          spec: { ...ensure({ forceAdopt: true }).spec, consent: { granted: true, how: "x" } },
        }],
      },
    ],
    [
      "revokePublicConnect false",
      db({ finalizer: true, spec: { revokePublicConnect: false } }),
      ready,
      { actions: [ensure({ revoke: false })] },
    ],
    [
      "namespace not allowed: nothing, not even the finalizer",
      db(),
      { kind: "unavailable", reason: "NamespaceNotAllowed", message: "no" },
      { actions: [], blocked: { reason: "NamespaceNotAllowed", message: "no", terminal: false } },
    ],
    [
      "the admin role's own name is refused",
      db({ spec: { databaseName: "dbtether_admin" } }),
      ready,
      {
        actions: [],
        blocked: {
          reason: "InvalidName",
          message: 'Cannot use database name "dbtether_admin": it is the server\'s admin role',
          terminal: true,
        },
      },
    ],
    [
      "delete, Retain: release the claim",
      db({ finalizer: true, deleting: true }),
      ready,
      {
        actions: [
          { kind: "releaseDatabase", database: "my_app_db", marker },
          { kind: "removeFinalizer" },
        ],
      },
    ],
    [
      "delete, Delete: drop",
      db({ finalizer: true, deleting: true, spec: { deletionPolicy: "Delete" } }),
      ready,
      {
        actions: [
          { kind: "dropDatabase", database: "my_app_db", marker },
          { kind: "removeFinalizer" },
        ],
      },
    ],
    [
      "schemas and publicSchema reach the SQL module, with their defaults",
      db({
        finalizer: true,
        spec: {
          schemas: [{ name: "app", deletionPolicy: "Delete" }, {
            name: "rep",
            owner: { level: "readwrite" },
            deletionPolicy: "Retain",
          }],
          publicSchema: "lockdown",
        },
      }),
      ready,
      {
        actions: [{
          kind: "ensureDatabase",
          spec: {
            database: "my_app_db",
            marker,
            revokePublicConnect: true,
            forceAdopt: false,
            schemas: [
              { name: "app", owner: "owner", deletionPolicy: "Delete" },
              { name: "rep", owner: "readwrite", deletionPolicy: "Retain" },
            ],
            publicSchema: "lockdown",
          },
        }],
      },
    ],
    [
      "a schema name the server reserves: InvalidName, terminal, nothing done",
      db({ spec: { schemas: [{ name: "pg_x", deletionPolicy: "Retain" }] } }),
      ready,
      {
        actions: [],
        blocked: {
          reason: "InvalidName",
          message: 'Cannot use schema "pg_x": it must not start with "pg_" (reserved)',
          terminal: true,
        },
      },
    ],
    ["delete without our finalizer: nothing", db({ deleting: true }), ready, { actions: [] }],
    [
      "delete, DBCluster gone: finalizer goes, cleanup skipped",
      db({ finalizer: true, deleting: true }),
      { kind: "unavailable", reason: "ClusterNotFound", message: "gone" },
      {
        actions: [{
          kind: "removeFinalizer",
          skippedCleanup: { reason: "ClusterNotFound", message: "gone" },
        }],
      },
    ],
    [
      "delete, server unreachable: blocked with the escape hatch in the message",
      db({ finalizer: true, deleting: true }),
      { kind: "unavailable", reason: "ClusterUnreachable", message: "Cannot reach x" },
      {
        actions: [],
        blocked: {
          reason: "ClusterUnreachable",
          message: "Cannot reach x; if the server is gone for good, remove the finalizer by " +
            "hand (see docs/crds/database.md)",
          terminal: false,
        },
      },
    ],
  ];
  for (const [name, d, cluster, want] of table) {
    await t.step(name, () => assertEquals(planDatabase(d, cluster), want));
  }
});

Deno.test("planDatabase: tablespace and template consent, options passed on", async (t) => {
  const consent = (tablespaces: string[], templates = false): ClusterState => ({
    ...ready,
    options: { cluster: "main", tablespaces, templates },
  });
  const plan = (spec: Partial<Database["spec"]>, c: ClusterState) =>
    planDatabase(db({ finalizer: true, spec }), c);
  await t.step("a tablespace the DBCluster does not list: refused before any SQL", () => {
    const p = plan({ tablespace: "fast" }, consent(["slow"]));
    assertEquals(p.actions, []);
    assertEquals(p.blocked?.reason, "TablespaceNotAllowed");
    assertEquals(p.blocked?.terminal, true);
    assertEquals(
      p.blocked?.message,
      'Cannot create the database in tablespace "fast": DBCluster "main" does not list it in ' +
        "spec.allowedTablespaces",
    );
    assertEquals(plan({ tablespace: "x'; DROP" }, ready).blocked?.reason, "TablespaceNotAllowed");
  });
  await t.step("a listed one, and pg_default without listing, reach the options", () => {
    const p = plan({ tablespace: "fast" }, consent(["fast"]));
    assertEquals((p.actions[0] as { spec: { options: unknown } }).spec.options, {
      tablespace: "fast",
    });
    assertEquals(plan({ tablespace: "pg_default" }, consent([])).blocked, undefined);
  });
  await t.step("isTemplate true needs allowTemplateDatabases; false never does", () => {
    assertEquals(plan({ isTemplate: true }, consent([])).blocked?.reason, "TemplateNotAllowed");
    assertEquals(plan({ isTemplate: true }, consent([], true)).blocked, undefined);
    assertEquals(plan({ isTemplate: false }, ready).blocked, undefined);
  });
  await t.step("allowConnections false: no extensions step (nobody can connect)", () => {
    const p = plan({ allowConnections: false, extensions: ["hstore"] }, ready);
    assertEquals(p.actions.map((a) => a.kind), ["ensureDatabase"]);
  });
  await t.step("extensions and extensionOptions merge, the options winning", () => {
    const p = plan({
      extensions: ["hstore", "pg_trgm"],
      extensionOptions: [{ name: "hstore", version: "1.4", schema: "app" }, { name: "citext" }],
    }, ready);
    assertEquals(p.actions[1], {
      kind: "ensureExtensions",
      database: "my_app_db",
      extensions: [
        { name: "hstore", version: "1.4", schema: "app" },
        { name: "pg_trgm" },
        { name: "citext" },
      ],
    });
  });
});

Deno.test("planDatabase: a schema owned by a DatabaseUser", async (t) => {
  const lists = (name: string, o: { ns?: string; deleting?: boolean } = {}) => {
    const u = makeUser({ databases: [{ name: "my-app-db" }] }, { name, namespace: o.ns ?? "team" });
    if (o.deleting) u.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
    return u;
  };
  const ownerOf = (users: Record<string, DatabaseUser>, name = "mig") => {
    const d = db({
      finalizer: true,
      spec: { schemas: [{ name: "app", owner: { databaseUser: name }, deletionPolicy: "Retain" }] },
    });
    const p = planDatabase(d, ready, { users: (ns, n) => ns === "team" ? users[n] : undefined });
    assertEquals(p.blocked, undefined);
    const action = p.actions[0];
    assertEquals(action?.kind, "ensureDatabase");
    return action?.kind === "ensureDatabase" ? action.spec.schemas?.[0]?.owner : undefined;
  };
  await t.step("a user of the namespace that lists the Database: its role, with its marker", () => {
    const u = lists("mig");
    u.spec.username = "migrator_role";
    assertEquals(ownerOf({ mig: u }), {
      kind: "user",
      user: "mig",
      role: "migrator_role",
      marker: { kind: "DatabaseUser", namespace: "team", name: "mig" },
    });
  });
  const waits: [string, Record<string, DatabaseUser>, string][] = [
    ["missing", {}, 'it does not exist in namespace "team"'],
    ["being deleted", { mig: lists("mig", { deleting: true }) }, "it is being deleted"],
    [
      "not listing this Database",
      { mig: makeUser({ databases: [{ name: "other-db" }] }, { name: "mig", namespace: "team" }) },
      'it does not list Database "my-app-db" in its databases',
    ],
    [
      "Alternating",
      {
        mig: makeUser({
          databases: [{ name: "my-app-db" }],
          rotation: { days: 30, strategy: "Alternating" },
        }, { name: "mig", namespace: "team" }),
      },
      "it rotates Alternating, with two roles, and a schema has one owner",
    ],
  ];
  for (const [name, users, why] of waits) {
    await t.step(`${name}: the schema waits, the rest of the database goes on`, () => {
      assertEquals(ownerOf(users), {
        kind: "waiting",
        user: "mig",
        message: `Schema "app" waits for its owner, DatabaseUser "mig": ${why}`,
      });
    });
  }
  await t.step("only the Database's own namespace is looked in", () => {
    const seen: string[][] = [];
    const d = db({
      spec: {
        schemas: [{ name: "app", owner: { databaseUser: "mig" }, deletionPolicy: "Retain" }],
      },
    });
    planDatabase(d, ready, { users: (ns, n) => (seen.push([ns, n]), undefined) });
    assertEquals(seen, [["team", "mig"]]);
  });
});
