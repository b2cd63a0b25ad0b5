/**
 * What a Database reconcile does, decided from observed state only: the finalizer, the call to
 * the postgres module that converges the server, the extensions, and what deletion means. The
 * SQL itself is planned by controllers/postgres (pure as well); this plan decides which of its
 * idempotent operations run, in which order, or why none may run.
 */
import type { Database } from "../../crds/database.ts";
import type { DatabaseUser } from "../../crds/database_user.ts";
import type { DBCluster } from "../../crds/dbcluster.ts";
import {
  type AdoptionConsent,
  type DatabaseOptions,
  FORCE_ADOPT_ANNOTATION,
} from "../postgres/claims.ts";
import type { DatabaseSpec as PgDatabaseSpec } from "../postgres/plan.ts";
import type { SchemaSpec } from "../postgres/claims.ts";
import { databaseEntries, usernameOf } from "../services/user_databases.ts";
import type { Marker } from "../postgres/names.ts";
import { identifierProblem } from "../postgres/quote.ts";
import { schemaNameProblem } from "../postgres/plan_schemas.ts";
import { type ExtensionSpec, mergeExtensions } from "../postgres/plan_extensions.ts";
import type { DatabaseFailure, DatabaseReason } from "./reasons.ts";

/** The finalizer every dbtether kind uses. */
export const FINALIZER = "dbtether.io/finalizer";
/**
 * Take over an existing database no resource claims, or one claimed by another Database of the
 * same namespace; needs the DBCluster's consent (spec.adoption).
 */
export { FORCE_ADOPT_ANNOTATION };

/** Whether the DBCluster could be resolved (credentials, namespace allow-list, reachability). */
export type ClusterState =
  | {
    kind: "ready";
    adminRole: string;
    /** The DBCluster's answer to adoption for the Database's namespace, read when asked. */
    consent?: AdoptionConsent;
    /** The DBCluster's consent to database options (spec.allowedTablespaces, ...). */
    options?: ClusterOptionConsent;
  }
  | { kind: "unavailable"; reason: DatabaseReason; message: string };

/** What the DBCluster lets its Databases ask for. */
export interface ClusterOptionConsent {
  cluster: string;
  /** Tablespaces besides pg_default. */
  tablespaces: readonly string[];
  templates: boolean;
}

/** The consent to database options that `cluster`'s spec gives. */
export function optionConsentOf(cluster: DBCluster): ClusterOptionConsent {
  return {
    cluster: cluster.metadata.name,
    tablespaces: cluster.spec.allowedTablespaces ?? [],
    templates: cluster.spec.allowTemplateDatabases === true,
  };
}

/** One step of a Database reconcile; each is idempotent. */
export type DatabaseAction =
  | { kind: "addFinalizer" }
  | { kind: "ensureDatabase"; spec: PgDatabaseSpec }
  | { kind: "ensureExtensions"; database: string; extensions: readonly ExtensionSpec[] }
  | { kind: "releaseDatabase"; database: string; marker: Marker }
  | { kind: "dropDatabase"; database: string; marker: Marker }
  | { kind: "removeFinalizer"; skippedCleanup?: { reason: DatabaseReason; message: string } };

/** Why nothing (more) can be done now. `terminal`: only a spec change helps. */
export type Blocked = DatabaseFailure;

export interface DatabasePlan {
  actions: DatabaseAction[];
  blocked?: Blocked;
}

/** The database name in PostgreSQL: spec.databaseName, else metadata.name with '-' → '_'. */
export function databaseNameOf(db: Database): string {
  return db.spec.databaseName ?? db.metadata.name.replaceAll("-", "_");
}

/** The claim marker written on the database: `dbtether:<namespace>/<name>`. */
export function markerOf(db: Database): Marker {
  return { namespace: db.metadata.namespace ?? "", name: db.metadata.name };
}

/** The Database asks to take over an existing database (annotation dbtether.io/force-adopt). */
export function wantsAdoption(db: Database): boolean {
  return db.metadata.annotations?.[FORCE_ADOPT_ANNOTATION] === "true";
}

function hasFinalizer(db: Database): boolean {
  return db.metadata.finalizers?.includes(FINALIZER) ?? false;
}

/** A DatabaseUser by namespace and name (the informer cache). */
export type UserLookup = (namespace: string, name: string) => DatabaseUser | undefined;

/**
 * Plans one reconcile of `db` given the state of its DBCluster; `users` finds the DatabaseUsers
 * its schemas name as owners (none found without it).
 */
export function planDatabase(
  db: Database,
  cluster: ClusterState,
  o: { users?: UserLookup } = {},
): DatabasePlan {
  const database = databaseNameOf(db);
  const marker = markerOf(db);
  if (db.metadata.deletionTimestamp) return planDeletion(db, cluster, { database, marker });
  if (cluster.kind === "unavailable") {
    const { reason, message } = cluster;
    return { actions: [], blocked: { reason, message, terminal: false } };
  }
  const problem = identifierProblem(database, { adminRole: cluster.adminRole });
  if (problem) {
    return {
      actions: [],
      blocked: {
        reason: "InvalidName",
        message: `Cannot use database name ${JSON.stringify(database)}: it ${problem}`,
        terminal: true,
      },
    };
  }
  const schemas: SchemaSpec[] = (db.spec.schemas ?? []).map((s) => ({
    name: s.name,
    owner: schemaOwner(db, s, o.users ?? (() => undefined)),
    deletionPolicy: s.deletionPolicy ?? "Retain",
  }));
  for (const s of schemas) {
    const why = schemaNameProblem(s.name);
    if (why) {
      const message = `Cannot use schema ${JSON.stringify(s.name)}: it ${why}`;
      return { actions: [], blocked: { reason: "InvalidName", message, terminal: true } };
    }
  }
  const refused = consentProblem(db, cluster.options);
  if (refused) return { actions: [], blocked: refused };
  const actions: DatabaseAction[] = [];
  if (!hasFinalizer(db)) actions.push({ kind: "addFinalizer" });
  actions.push({
    kind: "ensureDatabase",
    spec: {
      database,
      marker,
      revokePublicConnect: db.spec.revokePublicConnect ?? true,
      forceAdopt: wantsAdoption(db),
      ...(schemas.length ? { schemas } : {}),
      ...(db.spec.publicSchema && db.spec.publicSchema !== "keep"
        ? { publicSchema: db.spec.publicSchema }
        : {}),
      ...(cluster.consent ? { consent: cluster.consent } : {}),
      ...databaseOptions(db),
    },
  });
  const extensions = mergeExtensions(db.spec.extensions ?? [], db.spec.extensionOptions ?? []);
  // With connections disallowed nobody can connect to create them; they wait until allowed.
  if (extensions.length && db.spec.allowConnections !== false) {
    actions.push({ kind: "ensureExtensions", database, extensions });
  }
  return { actions };
}

type SchemaEntry = NonNullable<Database["spec"]["schemas"]>[number];

/**
 * The owner of a declared schema. A DatabaseUser is looked up in the Database's own namespace
 * only (the spec has no namespace field): it must name this Database, and have one role (an
 * Alternating user's two roles cannot both own the schema). Until then the schema waits; the
 * postgres module also checks that the role is the one dbtether made for this user.
 */
function schemaOwner(db: Database, s: SchemaEntry, users: UserLookup): SchemaSpec["owner"] {
  const name = s.owner?.databaseUser;
  if (name === undefined) return s.owner?.level ?? "owner";
  const namespace = db.metadata.namespace ?? "";
  const wait = (why: string) => ({
    kind: "waiting" as const,
    user: name,
    message: `Schema ${JSON.stringify(s.name)} waits for its owner, DatabaseUser ` +
      `${JSON.stringify(name)}: ${why}`,
  });
  const user = users(namespace, name);
  if (!user) return wait(`it does not exist in namespace ${JSON.stringify(namespace)}`);
  if (user.metadata.deletionTimestamp) return wait("it is being deleted");
  const lists = databaseEntries(user).some((e) =>
    e.namespace === namespace && e.name === db.metadata.name
  );
  if (!lists) {
    return wait(`it does not list Database ${JSON.stringify(db.metadata.name)} in its databases`);
  }
  if (user.spec.rotation?.strategy === "Alternating") {
    return wait("it rotates Alternating, with two roles, and a schema has one owner");
  }
  const marker = { kind: "DatabaseUser", namespace, name };
  return { kind: "user", user: name, role: usernameOf(user), marker };
}

/**
 * A tablespace or a template database the DBCluster does not allow: a tablespace is the platform
 * team's disk, and a template can be cloned with its data by any role with CREATEDB.
 */
function consentProblem(db: Database, consent: ClusterOptionConsent | undefined) {
  const cluster = JSON.stringify(consent?.cluster ?? db.spec.clusterRef.name);
  const ts = db.spec.tablespace;
  if (ts !== undefined && ts !== "pg_default" && !consent?.tablespaces.includes(ts)) {
    return {
      reason: "TablespaceNotAllowed" as const,
      message: `Cannot create the database in tablespace ${JSON.stringify(ts)}: DBCluster ` +
        `${cluster} does not list it in spec.allowedTablespaces`,
      terminal: true,
    };
  }
  if (db.spec.isTemplate === true && !consent?.templates) {
    return {
      reason: "TemplateNotAllowed" as const,
      message: `Cannot mark the database as a template: DBCluster ${cluster} does not set ` +
        "spec.allowTemplateDatabases (a template can be cloned, with its data, by any role " +
        "with CREATEDB)",
      terminal: true,
    };
  }
  return undefined;
}

function planDeletion(
  db: Database,
  cluster: ClusterState,
  o: { database: string; marker: Marker },
): DatabasePlan {
  if (!hasFinalizer(db)) return { actions: [] };
  if (cluster.kind === "unavailable") {
    // The DBCluster was deleted: there is no server left to clean up on.
    if (cluster.reason === "ClusterNotFound") {
      const { reason, message } = cluster;
      return { actions: [{ kind: "removeFinalizer", skippedCleanup: { reason, message } }] };
    }
    return {
      actions: [],
      blocked: {
        reason: cluster.reason,
        message: `${cluster.message}; if the server is gone for good, remove the finalizer ` +
          `by hand (see docs/crds/database.md)`,
        terminal: false,
      },
    };
  }
  const policy = db.spec.deletionPolicy ?? "Retain";
  const cleanup: DatabaseAction = policy === "Delete"
    ? { kind: "dropDatabase", ...o }
    : { kind: "releaseDatabase", ...o };
  return { actions: [cleanup, { kind: "removeFinalizer" }] };
}

/** spec's database options, only those set (none: `{}`, so plans without them are unchanged). */
function databaseOptions(db: Database): { options?: DatabaseOptions } {
  const o: DatabaseOptions = {};
  const s = db.spec;
  if (s.template !== undefined) o.template = s.template;
  if (s.encoding !== undefined) o.encoding = s.encoding;
  if (s.locale !== undefined) o.locale = s.locale;
  if (s.lcCollate !== undefined) o.lcCollate = s.lcCollate;
  if (s.lcCtype !== undefined) o.lcCtype = s.lcCtype;
  if (s.localeProvider !== undefined) o.localeProvider = s.localeProvider;
  if (s.icuLocale !== undefined) o.icuLocale = s.icuLocale;
  if (s.tablespace !== undefined) o.tablespace = s.tablespace;
  if (s.connectionLimit !== undefined) o.connectionLimit = s.connectionLimit;
  if (s.isTemplate !== undefined) o.isTemplate = s.isTemplate;
  if (s.allowConnections !== undefined) o.allowConnections = s.allowConnections;
  return Object.keys(o).length ? { options: o } : {};
}
