/**
 * What `dbtether plan` works from: the manifests (files, a directory, stdin; multi-document
 * YAML or JSON, `kind: List` flattened), each merged with the object the apiserver holds now,
 * and read-only views of the DBClusters, BackupStorages, Databases and Secrets the planners
 * consult. Every call is a get or a list.
 */
import { parseAllDocuments } from "yaml";
import type { BackupStorage } from "../crds/backup_storage.ts";
import { BackupStorageKind } from "../crds/backup_storage.ts";
import { type Database, DatabaseKind } from "../crds/database.ts";
import { type DBCluster, DBClusterKind } from "../crds/dbcluster.ts";
import type { KubeObject } from "../crds/kind.ts";
import { databaseNameOf } from "../controllers/database/plan.ts";
import { type KubeClient, type Resource, SecretResource } from "../controllers/runtime/kube.ts";
import { TerminalError } from "../lib/errors.ts";
import { crdSchema, withDefaults } from "./defaults.ts";

/** Any object of the manifests. */
export type Manifest = KubeObject<unknown, unknown> & { apiVersion?: string; kind?: string };

/** The uid of an object the apiserver does not hold yet (no Secret can name it as its owner). */
export const NEW_UID = "00000000-0000-0000-0000-000000000000";

/** The manifests in `text` (one file or stdin), in order; `where` names it in errors. */
export function parseManifests(text: string, where: string): Manifest[] {
  const out: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) {
      throw new TerminalError(
        "InvalidManifest",
        `Cannot parse ${where}: ${doc.errors[0]!.message}`,
      );
    }
    const v = doc.toJS() as unknown;
    if (v === null || v === undefined) continue;
    if (typeof v !== "object" || Array.isArray(v)) {
      throw new TerminalError("InvalidManifest", `Cannot use ${where}: a document is no object`);
    }
    const o = v as Manifest & { items?: Manifest[] };
    if (o.kind === "List" && Array.isArray(o.items)) out.push(...o.items);
    else out.push(o);
  }
  for (const m of out) {
    if (typeof m.kind !== "string" || typeof m.metadata?.name !== "string") {
      throw new TerminalError(
        "InvalidManifest",
        `Cannot use ${where}: every object needs kind and metadata.name`,
      );
    }
  }
  return out;
}

/** The manifest with the live object's metadata and status, or as new (uid {@link NEW_UID}). */
export function merged<T extends Manifest>(
  manifest: T,
  live: T | undefined,
  namespace?: string,
): T {
  const ns = namespace === undefined ? {} : { namespace };
  if (!live) {
    const { status: _status, ...rest } = manifest;
    return { ...rest, metadata: { ...manifest.metadata, ...ns, uid: NEW_UID } } as T;
  }
  return {
    ...live,
    spec: manifest.spec,
    metadata: {
      ...live.metadata,
      labels: { ...live.metadata.labels, ...manifest.metadata.labels },
      annotations: { ...live.metadata.annotations, ...manifest.metadata.annotations },
    },
  };
}

/** A Database of the manifests as its users would see it once applied: Ready. */
function readyAsApplied(db: Database): Database {
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  return {
    ...db,
    status: {
      ...db.status,
      databaseName: databaseNameOf(db),
      conditions: [{
        type: "Ready",
        status: "True",
        reason: "DatabaseReady",
        message: "planned",
        lastTransitionTime: now,
      }],
    },
  } as Database;
}

/** The cluster as `plan` reads it, once per object. */
export class PlanSources {
  readonly #client: KubeClient;
  readonly #manifests: readonly Manifest[];
  readonly #secrets = new Map<string, KubeObject<unknown, unknown>[]>();
  readonly #databases = new Map<string, Database | undefined>();
  clusters: DBCluster[] = [];
  storages: BackupStorage[] = [];

  constructor(client: KubeClient, manifests: readonly Manifest[]) {
    this.#client = client;
    this.#manifests = manifests;
  }

  /** Reads the cluster-scoped kinds; the DBClusters of the manifests replace the live ones. */
  async load(signal: AbortSignal): Promise<void> {
    const live = (await this.#client.list<DBCluster>(DBClusterKind, { signal })).items ?? [];
    const planned = this.#manifests.filter((m) => isKind(m, "DBCluster"))
      .map((m) => withDefaults(crdSchema(DBClusterKind.crd), m as DBCluster));
    this.clusters = [
      ...live.filter((c) => !planned.some((p) => p.metadata.name === c.metadata.name)),
      ...planned.map((p) => merged(p, live.find((c) => c.metadata.name === p.metadata.name))),
    ];
    this.storages = (await this.#client.list<BackupStorage>(BackupStorageKind, { signal })).items ??
      [];
  }

  /** The object the apiserver holds, or undefined. */
  live<T>(res: Resource, o: { namespace?: string; name: string; signal: AbortSignal }) {
    return this.#client.find<T>(res, o);
  }

  /**
   * The Database a user names: the live one when it is Ready, else the manifests' (as it would
   * be once applied), else the live one as it is (its users are then blocked, as they would be).
   */
  async database(namespace: string, name: string, signal: AbortSignal) {
    const key = `${namespace}/${name}`;
    if (!this.#databases.has(key)) {
      const live = await this.#client.find<Database>(DatabaseKind, { namespace, name, signal });
      const ready = live?.status?.conditions?.some((c) =>
        c.type === "Ready" && c.status === "True"
      );
      const m = this.#manifests.find((x) =>
        isKind(x, "Database") && x.metadata.name === name &&
        (x.metadata.namespace ?? namespace) === namespace
      ) as Database | undefined;
      const planned = m &&
        readyAsApplied(merged(withDefaults(crdSchema(DatabaseKind.crd), m), live, namespace));
      this.#databases.set(key, ready && !m ? live : planned ?? live);
    }
    return this.#databases.get(key);
  }

  /** The Secrets of a namespace, metadata only (who owns which). */
  async secrets(namespace: string, signal: AbortSignal) {
    let s = this.#secrets.get(namespace);
    if (!s) {
      s = (await this.#client.list<KubeObject<unknown, unknown>>(SecretResource, {
        namespace,
        metadataOnly: true,
        signal,
        // An empty metadata-only list comes with `items: null`.
      })).items ?? [];
      this.#secrets.set(namespace, s);
    }
    return s;
  }
}

/** Whether `m` is the dbtether kind `kind`. */
export function isKind(m: Manifest, kind: string): boolean {
  return m.kind === kind && (m.apiVersion ?? "").startsWith("dbtether.io/");
}
