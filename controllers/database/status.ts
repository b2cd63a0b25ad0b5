/**
 * The status a Database reconcile writes, computed from what the reconcile found and did.
 * Conditions are the source of truth; `phase` and `message` summarise them for kubectl.
 */
import type { Database, DatabaseStatus } from "../../crds/database.ts";
import {
  type Condition,
  type ConditionEvent,
  conditionEvent,
  getCondition,
  setCondition,
} from "../runtime/conditions.ts";
import { databaseRoles } from "../postgres/names.ts";
import { databaseNameOf } from "./plan.ts";
import type { DatabaseReason } from "./reasons.ts";
import { type Drift, inSync, inSyncCondition } from "../services/drift.ts";
import { type PauseState, withPause } from "../runtime/pause.ts";

/** Condition types of a Database. */
export type DatabaseConditionType =
  | "Ready"
  | "ExtensionsReady"
  | "OptionsMatch"
  | "InSync"
  | "Paused"
  | "SchemaOwnersReady";
/** Reasons of the OptionsMatch condition. */
export type OptionsReason = "OptionsMatch" | "OptionsDiffer";
/** Reasons of the SchemaOwnersReady condition. */
export type SchemaOwnersReason = "SchemaOwnersReady" | "SchemaOwnerNotReady";
/** Reasons of the ExtensionsReady condition. */
export type ExtensionsReason = "ExtensionsCreated" | "ExtensionFailed";

/** What one reconcile found and did. */
export interface DatabaseOutcome {
  /** The failure that stopped the reconcile (from the plan or from an action). */
  failure?: { reason: DatabaseReason; message: string };
  /** ensureDatabase succeeded. */
  ensured: boolean;
  /** Outcome of the extensions step, when it ran. */
  extensions?: { present: readonly string[]; failed: readonly { name: string; message: string }[] };
  /** Declared schemas whose DatabaseUser owner cannot own them yet (when the schemas ran). */
  waitingSchemas?: readonly { schema: string; user: string; message: string }[];
  /** Creation options (and extension schemas) the existing database does not have. */
  differences?: readonly string[];
  /** Observe: what differs (absent under Manage, which removes the InSync condition). */
  drift?: Drift;
  /** The pause annotation as read (the Paused condition; absent: none). */
  pause?: PauseState;
}

/** Reasons that mean "not there yet" rather than "something is wrong". */
const PENDING_REASONS = new Set<string>(["Reconciling", "OutOfSync"]);

/** The desired status of `db` after a reconcile with `outcome`. */
export function computeDatabaseStatus(
  db: Database,
  outcome: DatabaseOutcome,
  opts: { now: Date },
): DatabaseStatus {
  const old = db.status ?? {};
  const generation = db.metadata.generation;
  const database = databaseNameOf(db);
  const at = { generation, now: opts.now };
  let conditions: Condition[] = old.conditions ?? [];
  const requested = db.spec.extensions ?? [];
  if (!requested.length) conditions = conditions.filter((c) => c.type !== "ExtensionsReady");
  const ext = outcome.extensions;
  if (ext) {
    conditions = setCondition(
      conditions,
      ext.failed.length
        ? {
          type: "ExtensionsReady",
          status: false,
          reason: "ExtensionFailed",
          message: extensionMessage(database, ext.failed),
        }
        : {
          type: "ExtensionsReady",
          status: true,
          reason: "ExtensionsCreated",
          message: `Extensions present: ${requested.join(", ")}`,
        },
      at,
    );
  }
  conditions = optionsCondition(conditions, { outcome, database, at });
  conditions = schemaOwnersCondition(conditions, { db, outcome, at });
  conditions = outcome.drift
    ? setCondition(
      conditions,
      inSyncCondition(outcome.drift, `database ${JSON.stringify(database)}`),
      at,
    )
    : conditions.filter((c) => c.type !== "InSync");
  conditions = withPause(conditions, outcome.pause ?? { kind: "active" }, at);
  conditions = setCondition(conditions, readyCondition(db, outcome, database), at);
  const ready = getCondition(conditions, "Ready")!;
  const status: DatabaseStatus = {
    phase: phaseOf(db, ready),
    message: ready.message,
    databaseName: database,
    clusterName: db.spec.clusterRef.name,
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions,
  };
  const ownerRole = outcome.ensured ? databaseRoles(database).owner : old.ownerRole;
  if (ownerRole !== undefined) status.ownerRole = ownerRole;
  const present = ext ? [...ext.present] : old.extensions;
  if (present !== undefined && requested.length) status.extensions = present;
  return status;
}

/**
 * OptionsMatch: False with what differs when the existing database was created otherwise than
 * the spec says (dbtether never changes those); set True again once nothing differs, and absent
 * while nothing ever differed, so Databases without the problem carry no extra condition.
 */
function optionsCondition(
  conditions: Condition[],
  o: {
    outcome: DatabaseOutcome;
    database: string;
    at: { generation?: number | undefined; now: Date };
  },
): Condition[] {
  const diff = o.outcome.differences;
  if (diff === undefined) return conditions;
  if (diff.length) {
    return setCondition(conditions, {
      type: "OptionsMatch",
      status: false,
      reason: "OptionsDiffer",
      message: `Database ${JSON.stringify(o.database)} differs from the spec (reported, not ` +
        `changed): ${diff.join("; ")}`,
    }, o.at);
  }
  if (!getCondition(conditions, "OptionsMatch")) return conditions;
  return setCondition(conditions, {
    type: "OptionsMatch",
    status: true,
    reason: "OptionsMatch",
    message: `Database ${JSON.stringify(o.database)} has the options of the spec`,
  }, o.at);
}

/**
 * SchemaOwnersReady, only on a Database with a schema owned by a DatabaseUser: False while one
 * waits for its owner. Ready does not wait for it: the user itself waits for a Ready Database
 * before it creates its role, so a Ready held back would never come.
 */
function schemaOwnersCondition(
  conditions: Condition[],
  o: { db: Database; outcome: DatabaseOutcome; at: { generation?: number | undefined; now: Date } },
): Condition[] {
  const named = (o.db.spec.schemas ?? []).filter((s) => s.owner?.databaseUser !== undefined);
  if (!named.length) return conditions.filter((c) => c.type !== "SchemaOwnersReady");
  const waiting = o.outcome.waitingSchemas;
  if (waiting === undefined) return conditions;
  const reason: SchemaOwnersReason = waiting.length ? "SchemaOwnerNotReady" : "SchemaOwnersReady";
  return setCondition(conditions, {
    type: "SchemaOwnersReady",
    status: !waiting.length,
    reason,
    message: waiting.length
      ? waiting.map((w) => w.message).join("; ")
      : `The schemas owned by DatabaseUsers are owned by their roles: ${
        named.map((s) => s.name).join(", ")
      }`,
  }, o.at);
}

function readyCondition(db: Database, outcome: DatabaseOutcome, database: string) {
  const failed = outcome.extensions?.failed ?? [];
  if (outcome.failure) {
    return { type: "Ready", status: false, ...outcome.failure } as const;
  }
  if (outcome.drift) {
    return inSync(outcome.drift)
      ? {
        type: "Ready",
        status: true,
        reason: "Observed",
        message: `Database ${JSON.stringify(database)} matches the spec; managementPolicy is ` +
          "Observe: nothing is changed on the server",
      } as const
      : {
        type: "Ready",
        status: false,
        reason: "OutOfSync",
        message: `Database ${JSON.stringify(database)} differs from the spec (see InSync); ` +
          "managementPolicy is Observe: nothing is changed on the server",
      } as const;
  }
  if (db.metadata.deletionTimestamp) {
    return {
      type: "Ready",
      status: false,
      reason: "Deleting",
      message: `Database ${JSON.stringify(database)} is being ${
        db.spec.deletionPolicy === "Delete" ? "dropped" : "released"
      }`,
    } as const;
  }
  if (failed.length) {
    return {
      type: "Ready",
      status: false,
      reason: "ExtensionFailed",
      message: extensionMessage(database, failed),
    } as const;
  }
  if (!outcome.ensured) {
    return {
      type: "Ready",
      status: false,
      reason: "Reconciling",
      message: `Database ${JSON.stringify(database)} is being created`,
    } as const;
  }
  return {
    type: "Ready",
    status: true,
    reason: "DatabaseReady",
    message: `Database ${JSON.stringify(database)} is ready on cluster ${
      JSON.stringify(db.spec.clusterRef.name)
    }`,
  } as const;
}

function extensionMessage(
  database: string,
  failed: readonly { name: string; message: string }[],
): string {
  return `Cannot create extension${failed.length > 1 ? "s" : ""} in database ${
    JSON.stringify(database)
  }: ${failed.map((f) => `${f.name}: ${f.message}`).join("; ")}`;
}

function phaseOf(db: Database, ready: Condition): NonNullable<DatabaseStatus["phase"]> {
  if (db.metadata.deletionTimestamp) return "Deleting";
  if (ready.status === "True") return "Ready";
  return PENDING_REASONS.has(ready.reason) ? "Pending" : "Failed";
}

/** Ready reasons that are a step on the way: their Events are Normal. */
const ON_THE_WAY: ReadonlySet<string> = new Set(["Reconciling", "Deleting", "OutOfSync"]);

/** An Event for a change of the Ready condition, or undefined when nothing changed. */
export function readyTransition(
  before: DatabaseStatus | undefined,
  after: DatabaseStatus,
): ConditionEvent | undefined {
  return conditionEvent(before?.conditions, after.conditions, "Ready", ON_THE_WAY);
}

/** An Event for a change of the OptionsMatch condition (a Warning when options differ). */
export function optionsTransition(
  before: DatabaseStatus | undefined,
  after: DatabaseStatus,
): ConditionEvent | undefined {
  return conditionEvent(before?.conditions, after.conditions, "OptionsMatch");
}

/**
 * The Events of a status change: Ready's, InSync's (a Warning when it starts to differ),
 * OptionsMatch's and SchemaOwnersReady's.
 */
export function statusEvents(
  before: DatabaseStatus | undefined,
  after: DatabaseStatus,
): ConditionEvent[] {
  const sync = conditionEvent(before?.conditions, after.conditions, "InSync");
  const owners = conditionEvent(before?.conditions, after.conditions, "SchemaOwnersReady");
  return [readyTransition(before, after), sync, optionsTransition(before, after), owners]
    .filter((e) => e !== undefined);
}
