/**
 * Which application Secrets a DatabaseUser should have (one primary, or one per database), and
 * what to do about each: write the ones that differ, delete the ones the spec no longer names,
 * refuse the ones that belong to someone else. Pure.
 */
import type { DatabaseUser } from "../../crds/database_user.ts";
import type { OwnerReference } from "../runtime/types.ts";
import { otherOwner } from "../services/secret_owner.ts";
import {
  type Connection,
  decideSecret,
  desiredSecret,
  isOurs,
  perDatabaseSecretName,
  primarySecretName,
  renderData,
  type Secret,
  type SecretConflictReason,
} from "./secret.ts";
import type { DatabaseTarget } from "./spec.ts";

/** An application Secret the user should have. */
export interface SecretTarget {
  name: string;
  /** The Database resource it describes (annotation dbtether.io/database). */
  databaseResource: string;
  database: string;
}

/** The application Secrets of the spec: one primary, or one per database. */
export function secretTargets(user: DatabaseUser, targets: readonly DatabaseTarget[]) {
  if (user.spec.secretGeneration === "perDatabase") {
    return targets.map((t) => ({
      name: perDatabaseSecretName(user, t.name),
      databaseResource: t.name,
      database: t.pgName,
    }));
  }
  const first = targets[0]!;
  return [{ name: primarySecretName(user), databaseResource: first.name, database: first.pgName }];
}

/** A write or delete of an application Secret. */
export type SecretChange =
  | { kind: "write"; secret: Secret; create: boolean }
  /** `namespace`: a delivered copy's (delivery.ts); else the user's own. */
  | { kind: "delete"; name: string; uid: string; namespace?: string };

/** What to do about one application Secret. */
export type SecretAction =
  | SecretChange
  | { kind: "conflict"; name: string; reason: SecretConflictReason; message: string };

/**
 * Writes for the Secrets that differ from what the record says, deletes for Secrets this user
 * owns that the spec no longer names (the credentials record excluded), conflicts by onConflict.
 */
export function planSecrets(o: {
  user: DatabaseUser;
  ownerRef: OwnerReference;
  wanted: readonly SecretTarget[];
  conn: Omit<Connection, "database">;
  existing: ReadonlyMap<string, Secret>;
  owned: readonly Secret[];
  /** Cluster-scoped resources that read a Secret of that name (secret_owner.ts referencedBy). */
  referencedBy?: (name: string) => readonly string[];
}): SecretAction[] {
  const out: SecretAction[] = [];
  for (const w of o.wanted) {
    const existing = o.existing.get(w.name);
    const readers = o.referencedBy?.(w.name) ?? [];
    const claimedBy = existing &&
      (otherOwner(existing, { uid: o.user.metadata.uid, name: o.user.metadata.name }) ??
        (readers.length ? `${readers.join(", ")}, which reads credentials from it` : undefined));
    const d = decideSecret(existing, o.user, { claimedBy });
    if (d.kind === "conflict") {
      out.push({ kind: "conflict", name: w.name, reason: d.reason, message: d.message });
      continue;
    }
    const secret = desiredSecret({
      name: w.name,
      owner: o.user,
      ownerRef: o.ownerRef,
      databaseResource: w.databaseResource,
      data: renderData({ ...o.conn, database: w.database }, o.user.spec.secret),
      existing,
      keepForeignKeys: d.kind === "update" && d.keepForeignKeys,
    });
    if (secret) out.push({ kind: "write", secret, create: d.kind === "create" });
  }
  const names = new Set(o.wanted.map((w) => w.name));
  for (const s of o.owned) {
    if (!names.has(s.metadata.name) && isOurs(s, o.user) && s.metadata.uid) {
      out.push({ kind: "delete", name: s.metadata.name, uid: s.metadata.uid });
    }
  }
  return out;
}
