/**
 * BackupStorage: where backups go (S3 or compatible, GCS, Azure Blob, or a local directory).
 * Cluster-scoped, so a platform team configures it once for every namespace it allows.
 */
import { bool, enumOf, type Infer, obj, optional, str, withDefault } from "./schema.ts";
import {
  ageColumn,
  allowedNamespacesField,
  conditionsField,
  defineKind,
  GROUP,
  type KubeObject,
  messageField,
  namespaceGrantField,
  observedGenerationField,
  secretRef,
  timestamp,
  VERSION,
} from "./kind.ts";
import { TEMPLATE_VARIABLES } from "../backup/templates.ts";

/** Variables pathTemplate and filenameTemplate may use: the engine's list. */
export { TEMPLATE_VARIABLES };

/** The storage providers. */
export const STORAGE_PROVIDERS = ["s3", "gcs", "azure", "local"] as const;
/** A storage provider. */
export type StorageProvider = typeof STORAGE_PROVIDERS[number];

/**
 * CEL rules for a `{{ .Var }}` template that yields a storage key: every action names a known
 * variable, and no segment is empty, `.` or `..` (a key must not escape its prefix).
 */
export function templateRules(what: string): { rule: string; message: string }[] {
  const vars = TEMPLATE_VARIABLES.join("|");
  return [
    {
      rule: `self.findAll('\\\\{\\\\{').size() == ` +
        `self.findAll('\\\\{\\\\{\\\\s*\\\\.(${vars})\\\\s*\\\\}\\\\}').size() && ` +
        `self.findAll('\\\\}\\\\}').size() == self.findAll('\\\\{\\\\{').size()`,
      message: `${what} may only use {{ .Name }} with Name one of ` +
        `${TEMPLATE_VARIABLES.join(", ")}`,
    },
    {
      rule: "!self.startsWith('/') && !self.split('/').exists(s, s == '' || s == '.' || s == '..')",
      message: `${what} must be a relative path without empty, '.' or '..' segments`,
    },
  ];
}

/** A template field yielding part of a storage key. */
export function templateField(what: string, description: string) {
  return str({ minLength: 1, maxLength: 512, description, rules: templateRules(what) });
}

const endpoint = (description: string) =>
  optional(str({ maxLength: 2048, pattern: "^https?://", description }));

const spec = obj({
  s3: optional(obj({
    bucket: str({ minLength: 3, maxLength: 63, description: "Bucket name." }),
    region: optional(str({
      maxLength: 64,
      description: "AWS region, e.g. eu-west-1 (required for AWS unless AWS_REGION is set " +
        "for the operator; any value for most S3-compatible servers).",
    })),
    endpoint: endpoint("URL of an S3-compatible server, e.g. https://minio.example:9000."),
    forcePathStyle: withDefault(
      bool({ description: "Address buckets as <endpoint>/<bucket> (most S3-compatible servers)." }),
      false,
    ),
  }, { description: "Amazon S3 or an S3-compatible server." })),
  gcs: optional(obj({
    bucket: str({ minLength: 3, maxLength: 222, description: "Bucket name." }),
    project: optional(str({ maxLength: 64, description: "Google Cloud project ID." })),
    endpoint: endpoint("URL of a GCS-compatible server (for tests)."),
  }, { description: "Google Cloud Storage." })),
  azure: optional(obj({
    storageAccount: str({
      minLength: 3,
      maxLength: 24,
      pattern: "^[a-z0-9]+$",
      description: "Storage account name.",
    }),
    container: str({ minLength: 3, maxLength: 63, description: "Blob container name." }),
    endpoint: endpoint(
      "Blob service URL; default https://<storageAccount>.blob.core.windows.net.",
    ),
  }, { description: "Azure Blob Storage." })),
  local: optional(obj({
    path: str({
      minLength: 2,
      maxLength: 4096,
      pattern: "^/",
      description: "Absolute directory on the operator's filesystem (a mounted volume).",
    }),
  }, { description: "A directory on the operator's filesystem." })),
  pathTemplate: withDefault(
    templateField(
      "pathTemplate",
      "Prefix of every backup's key, from the variables ClusterName, DatabaseName, " +
        "Namespace, Timestamp, Year, Month, Day and RunID.",
    ),
    "{{ .ClusterName }}/{{ .DatabaseName }}",
  ),
  credentialsSecretRef: optional(secretRef(
    "Secret with static credentials. Unset: the workload identity of the operator (IRSA or " +
      "EKS Pod Identity, GKE Workload Identity, Azure Workload Identity). Keys: S3 " +
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (optional AWS_SESSION_TOKEN); GCS " +
      "credentials.json (a service-account key); Azure AZURE_STORAGE_KEY, " +
      "AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING.",
  )),
  allowedNamespaces: allowedNamespacesField("BackupStorage"),
  restores: optional(obj({
    allowUnsigned: withDefault(
      bool({
        description: "Restore dumps whose manifest carries no valid signature of this " +
          "operator (imports from elsewhere, backups written before manifests were signed, " +
          "dbtether backup from a terminal). Their manifest, source namespace included, is then " +
          "taken as written. Default false: only manifests the operator signed are restored.",
      }),
      false,
    ),
    crossNamespace: namespaceGrantField(
      "Namespaces whose Restores may restore backups written by other namespaces (or whose " +
        "manifest names no source) from this storage.",
    ),
  }, {
    description: "Which stored dumps Restores may use. Unset: a Restore uses only dumps this " +
      "operator signed for a Backup in the Restore's own namespace.",
  })),
}, {
  description: "Exactly one provider (s3, gcs, azure, local) and how keys are laid out.",
  rules: [{
    rule: "(has(self.s3) ? 1 : 0) + (has(self.gcs) ? 1 : 0) + (has(self.azure) ? 1 : 0) + " +
      "(has(self.local) ? 1 : 0) == 1",
    message: "exactly one of s3, gcs, azure and local must be set",
  }],
});

/** The phases a BackupStorage reports. */
export const BACKUP_STORAGE_PHASES = ["Pending", "Ready", "Failed"] as const;

const status = obj({
  phase: optional(enumOf(BACKUP_STORAGE_PHASES, {
    description: "Ready when the last probe could reach and write to the location.",
  })),
  provider: optional(enumOf(STORAGE_PROVIDERS, { description: "The provider configured." })),
  message: messageField,
  lastValidation: timestamp("When the location was last probed."),
  observedGeneration: observedGenerationField,
  conditions: conditionsField,
});

/** The desired state of a BackupStorage. */
export type BackupStorageSpec = Infer<typeof spec>;
/** The observed state of a BackupStorage. */
export type BackupStorageStatus = Infer<typeof status>;
/** A BackupStorage object. */
export type BackupStorage = KubeObject<BackupStorageSpec, BackupStorageStatus>;

/** The BackupStorage kind: its CRD and its API descriptor. */
export const BackupStorageKind = defineKind({
  group: GROUP,
  version: VERSION,
  kind: "BackupStorage",
  plural: "backupstorages",
  singular: "backupstorage",
  shortNames: ["bs"],
  categories: ["dbtether"],
  scope: "Cluster",
  description: "BackupStorage is a bucket, container or directory that Backups are written to.",
  spec,
  status: optional(status),
  printerColumns: [
    { name: "Provider", type: "string", jsonPath: ".status.provider" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    ageColumn,
  ],
});
