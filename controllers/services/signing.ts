/**
 * The keys that sign backup manifests (backup/manifest.ts), kept in a Secret the operator owns
 * in its own namespace (`--backup-signing-secret`, default
 * `<leader election namespace>/dbtether-backup-signing`).
 *
 * Every entry of the Secret's data is a key (at least 32 bytes); the entry `signing-key` signs
 * new manifests and every entry verifies, so a key is rotated by moving the old value to
 * another entry and putting a new one under `signing-key` (docs/crds/backupstorage.md). When
 * the Secret is missing, the first backup creates it with 32 random bytes; two replicas racing
 * to create it both end up with the one that won (AlreadyExists: read it again).
 *
 * The key bytes never leave this module except into the HMAC: they are not logged, and errors
 * name the Secret, never its content.
 */
import type { KubeObject } from "../../crds/kind.ts";
import { type SigningKey, signingKey } from "../../backup/manifest.ts";
import { AlreadyExistsError, errorMessage } from "../../lib/errors.ts";
import { type KubeClient, SecretResource } from "../runtime/kube.ts";

/** The Secret entry that signs; every entry verifies. */
export const SIGNING_ENTRY = "signing-key";
/** Bytes of a key the operator generates. */
export const GENERATED_KEY_BYTES = 32;

type Secret = KubeObject<unknown, unknown> & { data?: Record<string, string> };

/** Where the signing keys live (config.ts parses `--backup-signing-secret`). */
export interface SecretRef {
  namespace: string;
  name: string;
}

/** Decoded keys of a Secret: the signing one (if valid) and all valid ones. */
export function keysOf(data: Record<string, string> | undefined): {
  signing?: SigningKey;
  all: SigningKey[];
  invalid: string[];
} {
  const all: SigningKey[] = [];
  const invalid: string[] = [];
  let signing: SigningKey | undefined;
  for (const [entry, b64] of Object.entries(data ?? {})) {
    let key: SigningKey;
    try {
      key = signingKey(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    } catch {
      invalid.push(entry);
      continue;
    }
    all.push(key);
    if (entry === SIGNING_ENTRY) signing = key;
  }
  return { ...(signing ? { signing } : {}), all, invalid };
}

/** Reads (and for signing, creates) the signing keys from the API. */
export class ManifestKeyring {
  readonly #client: KubeClient;
  readonly ref: SecretRef;

  constructor(client: KubeClient, ref: SecretRef) {
    this.#client = client;
    this.ref = ref;
  }

  get #where(): string {
    return `Secret ${this.ref.namespace}/${this.ref.name}`;
  }

  /** The key that signs; creates the Secret when it does not exist. */
  async signingKey(opts: { signal?: AbortSignal } = {}): Promise<SigningKey> {
    let secret = await this.#read(opts.signal);
    if (!secret) secret = await this.#create(opts.signal);
    const { signing, invalid } = keysOf(secret.data);
    if (!signing) {
      throw new Error(
        `the ${this.#where} has no valid "${SIGNING_ENTRY}" entry` +
          (invalid.includes(SIGNING_ENTRY) ? " (it is shorter than 32 bytes)" : "") +
          `: put ${GENERATED_KEY_BYTES} random bytes there, or delete the Secret to have one made`,
      );
    }
    return signing;
  }

  /** Every key that verifies; none when the Secret does not exist. */
  async verifyingKeys(opts: { signal?: AbortSignal } = {}): Promise<SigningKey[]> {
    return keysOf((await this.#read(opts.signal))?.data).all;
  }

  /** A description for messages: where the keys are, never what they are. */
  describe(): string {
    return this.#where;
  }

  async #read(signal?: AbortSignal): Promise<Secret | undefined> {
    try {
      return await this.#client.find<Secret>(SecretResource, {
        namespace: this.ref.namespace,
        name: this.ref.name,
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      throw new Error(
        `Cannot read the backup signing keys from the ${this.#where}: ${errorMessage(e)}`,
      );
    }
  }

  async #create(signal?: AbortSignal): Promise<Secret> {
    const bytes = crypto.getRandomValues(new Uint8Array(GENERATED_KEY_BYTES));
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    const body = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: this.ref.name,
        namespace: this.ref.namespace,
        labels: { "app.kubernetes.io/managed-by": "dbtether" },
        annotations: {
          "dbtether.io/purpose": "HMAC keys of backup manifests: signing-key signs, every " +
            "entry verifies. Deleting it makes existing backups unrestorable by Restores.",
        },
      },
      type: "Opaque",
      data: { [SIGNING_ENTRY]: btoa(s) },
    };
    try {
      return await this.#client.create<Secret>(SecretResource, {
        namespace: this.ref.namespace,
        body,
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      if (e instanceof AlreadyExistsError) {
        const again = await this.#read(signal);
        if (again) return again;
      }
      throw new Error(`Cannot create the backup signing key ${this.#where}: ${errorMessage(e)}`);
    }
  }
}
