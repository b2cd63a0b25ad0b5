/**
 * The restore test of a BackupSchedule (spec.verify), as a long job of the shared runner: the
 * chosen Backup's signed manifest is checked, the dump restored into a scratch database on the
 * Database's server (restore_target.ts `verifyPlacement`: as a temporary login role that can
 * act only as the Database's owner role, psql in restricted mode, the stored object checked
 * against its manifest's SHA-256), its tables and rows counted and compared with the counts
 * recorded from the dump's snapshot, and the scratch database dropped.
 *
 * With `verify.clusterRef` the scratch database is on that DBCluster instead, which must admit
 * the schedule's namespace (allowedNamespaces, checked before any SQL there). The Database's
 * owner role does not exist on that server: the scratch database gets an owner role of its own
 * (`verifyPlacement` elsewhere), made and dropped with it, and the source database's encoding
 * and locale, read on the Database's server.
 *
 * Crash safety is level-triggered: `status.verifying` is written before the scratch database
 * is made and cleared only with the result; a reconcile that finds it set while no job of this
 * process runs drops whatever the scratch names hold of ours, then plans again.
 */
import type { Backup } from "../../crds/backup.ts";
import { BackupKind } from "../../crds/backup.ts";
import { type BackupSchedule, BackupScheduleKind } from "../../crds/backup_schedule.ts";
import type { BackupStorage } from "../../crds/backup_storage.ts";
import type { Database } from "../../crds/database.ts";
import { type BackupManifest, verifyManifest } from "../../backup/manifest.ts";
import { parseServerVersionNum } from "../../backup/pg_tools.ts";
import { readRestoreManifest, runRestore } from "../../backup/restore.ts";
import { compareCounts, isTableCounts } from "../../backup/table_counts.ts";
import { DbtetherError, errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { PgExecutor } from "../postgres/execute.ts";
import { databaseRoles } from "../postgres/names.ts";
import {
  type RestorePlacement,
  RestoreTargetExecutor,
  verifyPlacement,
} from "../postgres/restore_target.ts";
import { generatePassword, scramVerifier } from "../postgres/scram.ts";
import type { DatabaseLocale } from "../postgres/statements.ts";
import { countTables } from "../postgres/table_counts.ts";
import { updateStatus } from "../runtime/objects.ts";
import type { ControllerDeps, InformerSet } from "../runtime/shared.ts";
import { acquireSlot, type BackupShared } from "../services/backup_shared.ts";
import { openJobConnection } from "../services/job_connection.ts";
import type { ResolvedCluster } from "../services/resolver.ts";
import type { Services } from "../services/services.ts";
import { checkStorageNamespace, openStore } from "../services/storage_access.ts";
import type { ScheduleMetrics } from "./metrics.ts";
import { VERIFIED_ANNOTATION, VERIFIED_AT_ANNOTATION } from "./names.ts";
import { verifiedStatus, verifyingStatus } from "./status.ts";

/** What verifications are run with. */
export interface VerifierDeps {
  services: Services;
  jobs: BackupShared;
  storages: InformerSet<BackupStorage>;
  databases: InformerSet<Database>;
  metrics: ScheduleMetrics;
  enqueue: (key: string) => void;
}

interface VerifiedWrite {
  result: "Passed" | "Failed" | "Error";
  message: string;
  durationMs: number;
}

/** A failure that is the backup's (it does not restore, or not to what it recorded). */
class VerifyFailed extends Error {}

/** Starts, runs and cleans up after the verifications of schedules. */
export class Verifier {
  /** When this process last recorded a verification, per schedule key. */
  readonly #recorded = new Map<string, number>();

  constructor(private readonly deps: ControllerDeps, private readonly o: VerifierDeps) {}

  /**
   * Whether the cached `s` predates the last result this process recorded for it (the informer
   * has not caught up yet): planning from it would verify the same Backup again.
   */
  stale(s: BackupSchedule): boolean {
    const at = this.#recorded.get(`${s.metadata.namespace}/${s.metadata.name}`);
    if (at === undefined) return false;
    // status times have whole seconds.
    return (Date.parse(s.status?.lastVerification?.time ?? "") || 0) < at - 1000;
  }

  #jobKey(s: BackupSchedule): string {
    return `verify/${s.metadata.namespace}/${s.metadata.name}`;
  }

  /** Whether a verification of `s` runs in this process now. */
  running(s: BackupSchedule): boolean {
    return this.o.jobs.runner.has(this.#jobKey(s));
  }

  /**
   * After a crash or a leader change mid-verification (status.verifying set, no job here):
   * drops the scratch database and login role of `s` if they exist, then clears the marker.
   */
  async recover(s: BackupSchedule, signal: AbortSignal): Promise<void> {
    const db = this.#database(s);
    if (db?.status?.databaseName && db.status.clusterName) {
      await this.#cleanupOn(db.status.clusterName, this.#placement(s, db, false), signal);
      const other = s.spec.verify?.clusterRef?.name;
      if (other !== undefined && other !== db.status.clusterName) {
        await this.#cleanupOn(other, this.#placement(s, db, true), signal).catch((e) => {
          // Refused or gone: nothing of this verification can be there.
          const refused = e instanceof DbtetherError &&
            (e.reason === "NamespaceNotAllowed" || e.reason === "ClusterNotFound");
          if (!refused) throw e;
        });
      }
    }
    await updateStatus(this.deps.client, {
      resource: BackupScheduleKind,
      object: s,
      compute: (v) => verifyingStatus(v, undefined),
      signal,
    });
  }

  async #cleanupOn(clusterName: string, place: RestorePlacement, signal: AbortSignal) {
    const cluster = await this.o.services.resolver.resolve(clusterName, {
      namespace: place.borrower.namespace,
      signal,
    });
    const steps = new RestoreTargetExecutor(
      new PgExecutor(cluster.pool, { logger: this.deps.logger, signal }),
      { logger: this.deps.logger },
    );
    await steps.cleanupVerification(place);
  }

  /** Records that `backup` is being verified, then starts the job. */
  async start(s: BackupSchedule, backup: Backup, signal: AbortSignal): Promise<void> {
    await updateStatus(this.deps.client, {
      resource: BackupScheduleKind,
      object: s,
      compute: (v) => verifyingStatus(v, backup.metadata.name),
      signal,
    });
    const key = `${s.metadata.namespace}/${s.metadata.name}`;
    this.o.jobs.runner.start(
      this.#jobKey(s),
      (jobSignal) => this.#run(s, backup, jobSignal),
      () => this.o.enqueue(key),
    );
  }

  #database(s: BackupSchedule): Database | undefined {
    return this.o.databases.get(`${s.metadata.namespace}/${s.spec.databaseRef.name}`);
  }

  #placement(s: BackupSchedule, db: Database, elsewhere: boolean): RestorePlacement {
    const ns = s.metadata.namespace ?? "";
    const target = db.status?.databaseName ?? "";
    return verifyPlacement({
      target,
      owner: db.status?.ownerRole ?? databaseRoles(target).owner,
      schedule: { namespace: ns, name: s.metadata.name, uid: s.metadata.uid ?? "" },
      database: { namespace: ns, name: db.metadata.name },
      elsewhere,
    });
  }

  async #run(s: BackupSchedule, b: Backup, signal: AbortSignal): Promise<void> {
    const log = this.deps.logger.with({
      schedule: `${s.metadata.namespace}/${s.metadata.name}`,
      backup: b.metadata.name,
    });
    const started = this.deps.clock.now();
    let result: "Passed" | "Failed" | "Error";
    let message: string;
    try {
      message = await this.#verify(s, b, { signal, log });
      result = "Passed";
    } catch (e) {
      // Stopped (shutdown, leader change): status.verifying stays, the next leader cleans up.
      if (signal.aborted) return;
      // Only a restore or a comparison judges the backup; anything else is an Error, retried.
      result = e instanceof VerifyFailed ? "Failed" : "Error";
      message = e instanceof VerifyFailed ? e.message : `Cannot verify: ${errorMessage(e)}`;
    }
    await this.#record(s, b, {
      result,
      message,
      durationMs: this.deps.clock.now() - started,
      log,
      signal,
    });
  }

  /** The verification itself; returns the message of a pass, throws on a failure. */
  async #verify(
    s: BackupSchedule,
    b: Backup,
    o: { signal: AbortSignal; log: Logger },
  ): Promise<string> {
    const { signal, log } = o;
    const ns = s.metadata.namespace ?? "";
    const db = this.#database(s);
    if (!db?.status?.databaseName || !db.status.clusterName) {
      throw new Error(`Database "${s.spec.databaseRef.name}" is not ready`);
    }
    // The same grant every other use of a DBCluster needs: allowedNamespaces.
    const own = await this.o.services.resolver.resolve(db.status.clusterName, {
      namespace: ns,
      signal,
    });
    const clusterName = s.spec.verify?.clusterRef?.name ?? db.status.clusterName;
    const elsewhere = clusterName !== db.status.clusterName;
    const cluster = elsewhere
      ? await this.o.services.resolver.resolve(clusterName, { namespace: ns, signal })
      : own;
    const locale = elsewhere ? await this.#sourceLocale(own, db, { signal, log }) : undefined;
    const storage = this.o.storages.get(b.spec.storageRef.name);
    if (!storage) throw new Error(`BackupStorage "${b.spec.storageRef.name}" does not exist`);
    await checkStorageNamespace(this.deps.client, { storage, namespace: ns, signal });
    const lease = await acquireSlot(this.o.jobs.limiter, {
      id: `verify/${ns}/${s.metadata.name}`,
      cluster: clusterName,
      signal,
      clock: this.deps.clock,
      onWaiting: async () => {},
    });
    try {
      const store = await openStore(this.deps.client, storage, {
        env: this.o.services.env,
        logger: log,
        signal,
      });
      try {
        const manifest = await this.#trusted(b, { store, signal });
        const place = this.#placement(s, db, elsewhere);
        return await this.#restoreAndCount(place, {
          cluster,
          store,
          manifest,
          signal,
          log,
          ...(locale ? { locale } : {}),
        });
      } finally {
        await store.close().catch(() => {});
      }
    } finally {
      lease.release();
    }
  }

  /** The Backup's manifest, signed by this operator for this very Backup, or VerifyFailed. */
  async #trusted(
    b: Backup,
    o: { store: Parameters<typeof readRestoreManifest>[0]; signal: AbortSignal },
  ): Promise<BackupManifest> {
    const path = b.status?.path ?? "";
    let m: BackupManifest;
    try {
      m = (await readRestoreManifest(o.store, path, { signal: o.signal }))!;
    } catch (e) {
      throw new VerifyFailed(errorMessage(e));
    }
    const keys = await this.o.jobs.keyring.verifyingKeys({ signal: o.signal });
    const verdict = verifyManifest(m, keys);
    if (verdict !== "valid" || m.source?.backupUid !== b.metadata.uid || m.key !== path) {
      throw new VerifyFailed(
        `The manifest of "${path}" is not this operator's signed record of this Backup ` +
          `(signature: ${verdict})`,
      );
    }
    return m;
  }

  /** The encoding and locale of the Database on its own server, for a scratch elsewhere. */
  async #sourceLocale(
    own: ResolvedCluster,
    db: Database,
    o: { signal: AbortSignal; log: Logger },
  ): Promise<DatabaseLocale> {
    const steps = new RestoreTargetExecutor(
      new PgExecutor(own.pool, { logger: o.log, signal: o.signal }),
      { logger: o.log },
    );
    const name = db.status?.databaseName ?? "";
    const locale = await steps.locale(name);
    if (!locale) throw new Error(`Database ${JSON.stringify(name)} does not exist on its server`);
    return locale;
  }

  async #restoreAndCount(
    place: RestorePlacement,
    o: {
      cluster: ResolvedCluster;
      store: Parameters<typeof readRestoreManifest>[0];
      manifest: BackupManifest;
      signal: AbortSignal;
      log: Logger;
      locale?: DatabaseLocale;
    },
  ): Promise<string> {
    const { cluster, manifest, signal, log } = o;
    const executor = new PgExecutor(cluster.pool, { logger: log, signal });
    const steps = new RestoreTargetExecutor(executor, { logger: log });
    await steps.cleanupVerification(place);
    try {
      const password = generatePassword(32);
      await steps.prepare(place, {
        verifier: await scramVerifier(password),
        ...(o.locale ? { locale: o.locale } : {}),
      });
      const versionNum = cluster.cluster.status?.versionNum;
      await using conn = await openJobConnection(cluster.server, place.scratch);
      try {
        await runRestore({
          store: o.store,
          key: manifest.key,
          manifest,
          connection: { ...conn.connection, user: place.loginRole, password, role: place.owner },
          signal,
          logger: log,
          clock: this.deps.clock,
          format: manifest.format,
          ...(this.o.services.config.pgToolsDirs.length
            ? { toolDirs: this.o.services.config.pgToolsDirs }
            : {}),
          ...(versionNum ? { serverVersion: parseServerVersionNum(versionNum) } : {}),
        });
      } catch (e) {
        throw new VerifyFailed(`The restore failed: ${errorMessage(e)}`);
      }
      await steps.releaseLoginRole(place);
      const restored = await executor.query((sql) => countTables(sql), place.scratch);
      return judge(manifest, restored);
    } finally {
      if (!signal.aborted) await steps.cleanupVerification(place);
    }
  }

  async #record(
    s: BackupSchedule,
    b: Backup,
    o: VerifiedWrite & { log: Logger; signal: AbortSignal },
  ): Promise<void> {
    const now = this.deps.clock.now();
    // An Error says nothing about the Backup: it is not marked.
    if (o.result !== "Error") await this.#mark(b, o.result, { now, log: o.log, signal: o.signal });
    await updateStatus(this.deps.client, {
      resource: BackupScheduleKind,
      object: s,
      compute: (v) => verifiedStatus(v, { backup: b.metadata.name, ...o, now }),
      signal: o.signal,
    });
    this.#recorded.set(`${s.metadata.namespace}/${s.metadata.name}`, now);
    const passed = o.result === "Passed";
    this.deps.recorder.emit(
      s,
      passed ? "Normal" : "Warning",
      `Verification${o.result}`,
      `Backup "${b.metadata.name}": ${o.message}`,
    );
    this.o.metrics.verified(s, { result: o.result, at: now, durationMs: o.durationMs });
    o.log.info("Verification ended", { result: o.result, durationMs: o.durationMs });
  }

  /** The verdict on the Backup itself, as annotations retention and `backups list` read. */
  async #mark(
    b: Backup,
    result: "Passed" | "Failed",
    o: { now: number; log: Logger; signal: AbortSignal },
  ): Promise<void> {
    const now = o.now;
    await this.deps.client.patch(BackupKind, {
      namespace: b.metadata.namespace,
      name: b.metadata.name,
      body: {
        metadata: {
          uid: b.metadata.uid,
          annotations: {
            [VERIFIED_ANNOTATION]: result,
            [VERIFIED_AT_ANNOTATION]: new Date(now).toISOString(),
          },
        },
      },
      signal: o.signal,
    }).catch((e) => o.log.warn("Cannot mark the verified Backup", { error: errorMessage(e) }));
  }
}

/** The verdict on a clean restore: its counts against the recorded ones. */
function judge(m: BackupManifest, restored: Awaited<ReturnType<typeof countTables>>): string {
  if (!isTableCounts(m.counts)) return "Restored cleanly; the backup recorded no counts to compare";
  if (!restored) throw new VerifyFailed("The restore holds too many tables to count");
  const v = compareCounts(m.counts, restored);
  if (!v.ok) throw new VerifyFailed(v.message);
  return `Restored cleanly: ${m.counts.tables} tables and ${m.counts.rows} rows, as recorded`;
}
