/**
 * Pure: whether a Restore may use a stored dump, decided from its manifest before anything
 * touches PostgreSQL. Two questions, asked for every source form (path, backupRef, latestFrom,
 * a retry's recorded source): did this operator write the manifest (its signature), and did a
 * Backup of the Restore's own namespace write it (its source)? A Backup's status, which names
 * the key, is never evidence: only the signed manifest is.
 */
import type { BackupManifest, SignatureVerdict } from "../../backup/manifest.ts";

/** Why a dump is refused, declared once (also in status.ts RestoreReason). */
export type TrustReason =
  | "BackupNotSigned"
  | "SignatureInvalid"
  | "CrossNamespaceRestoreNotAllowed";

/** What the decision needs. */
export interface TrustInput {
  manifest: BackupManifest;
  verdict: SignatureVerdict;
  /** The dump's key and the BackupStorage it is in, for messages. */
  key: string;
  storage: string;
  /** Where the verifying keys are (e.g. "Secret dbtether/dbtether-backup-signing"). */
  keyring: string;
  /** The Restore's namespace. */
  namespace: string;
  /** BackupStorage spec.restores.allowUnsigned. */
  allowUnsigned: boolean;
  /** Whether spec.restores.crossNamespace grants the Restore's namespace. */
  crossNamespace: boolean;
}

export type TrustDecision = { ok: true } | { ok: false; reason: TrustReason; message: string };

/**
 * The rules: a valid signature, or `allowUnsigned` for a manifest without one (or signed by a
 * key this operator does not have); a signature that does not match is refused always (the
 * manifest was changed). Then the source namespace must be the Restore's, unless
 * `crossNamespace` grants it; a manifest without a source counts as another namespace's.
 */
export function checkTrust(i: TrustInput): TrustDecision {
  const what = `Cannot restore "${i.key}" from BackupStorage "${i.storage}"`;
  if (i.verdict === "invalid") {
    return {
      ok: false,
      reason: "SignatureInvalid",
      message: `${what}: its manifest does not match its signature (it was changed after the ` +
        `operator wrote it)`,
    };
  }
  if (i.verdict !== "valid" && !i.allowUnsigned) {
    const why = i.verdict === "unsigned"
      ? "its manifest is not signed by this operator (a dump written elsewhere, by `dbtether " +
        "backup`, or before manifests were signed)"
      : `its manifest is signed with key ${i.manifest.signature?.keyId}, which is not in the ` +
        `${i.keyring} (a key rotated out, or another operator's)`;
    return {
      ok: false,
      reason: i.verdict === "unsigned" ? "BackupNotSigned" : "SignatureInvalid",
      message: `${what}: ${why}; the platform team can allow such dumps with ` +
        `spec.restores.allowUnsigned: true on the BackupStorage`,
    };
  }
  const source = i.manifest.source?.namespace;
  if (source === i.namespace || i.crossNamespace) return { ok: true };
  const whose = source === undefined
    ? "its manifest does not say which namespace wrote it"
    : `it was written by a Backup in namespace "${source}"`;
  return {
    ok: false,
    reason: "CrossNamespaceRestoreNotAllowed",
    message: `${what} into namespace "${i.namespace}": ${whose}; a namespace restores only its ` +
      `own backups unless the BackupStorage's spec.restores.crossNamespace grants it`,
  };
}
