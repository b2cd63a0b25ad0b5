/**
 * How the cloud backends never overwrite an object and never leave one behind after a put that
 * did not end cleanly.
 *
 * Every put is conditional on the key being free (S3 and Azure `If-None-Match: *`, GCS
 * `ifGenerationMatch=0`) and carries a random token in its metadata. The token is what tells
 * this put's object from any other: the SDKs retry a completing request whose response was
 * lost, and the retry is then refused by the object the first try created; and a signal can
 * fire while the server completes the object. In both cases the object at the key is ours only
 * if it carries our token, so {@link settlePut} keeps it (a lost response) or deletes exactly
 * that version (an abort), and never touches another writer's object.
 *
 * `CloudStore.put` (cloud.ts) is the one put of S3, GCS and Azure.
 */
import { alreadyExists } from "./errors.ts";
import { putFailure, StorageError, type TrackedSource } from "./store.ts";

/** Metadata key of the put token; `head` does not return it. */
export const PUT_TOKEN_KEY = "dbtether-put";

/** A fresh token for one put. */
export function newPutToken(): string {
  return crypto.randomUUID();
}

/** `metadata` plus the put token. */
export function withPutToken(
  metadata: Record<string, string> | undefined,
  token: string,
): Record<string, string> {
  return { ...metadata, [PUT_TOKEN_KEY]: token };
}

/** `metadata` without the put token (what `head` returns). */
export function withoutPutToken(metadata: Record<string, string>): Record<string, string> {
  const { [PUT_TOKEN_KEY]: _token, ...rest } = metadata;
  return rest;
}

/** The object at a key as a backend sees it: its put token and its version (ETag, generation). */
export interface StoredVersion {
  token: string | undefined;
  version: string;
}

/** Options of {@link settlePut}. */
export interface SettleOptions {
  token: string;
  /** The upload's failure; undefined when the upload reported success. */
  failure: { error: unknown } | undefined;
  source: TrackedSource;
  signal: AbortSignal | undefined;
  /** The object now at the key, or undefined. */
  inspect: () => Promise<StoredVersion | undefined>;
  /** Deletes `version` of the object at the key, and nothing newer. */
  remove: (version: string) => Promise<void>;
  /** Maps an SDK error; AlreadyExists for a refused conditional write. */
  map: (e: unknown) => StorageError;
}

/**
 * Decides how a put ends once its upload finished: returns when the put succeeded (also when
 * only its response was lost), throws otherwise, after deleting this put's object if the
 * server completed it before the signal fired. A refusal is AlreadyExists only when another
 * writer's object is at the key.
 */
export async function settlePut(o: SettleOptions): Promise<void> {
  const aborted = o.signal?.aborted === true;
  if (!o.failure && !aborted) return;
  const fail = () => putFailure(o.failure?.error, o.source, { signal: o.signal, map: o.map });
  // The server completes an object only after the source ended: before, nothing can be there.
  if (!o.source.ended) throw fail();
  let found: StoredVersion | undefined;
  try {
    found = await o.inspect();
  } catch {
    // The server cannot be asked (it is gone): the put's own failure is the news.
    throw fail();
  }
  if (found && found.token === o.token) {
    if (!aborted) return;
    // Best effort: if the delete fails too, the caller sees Aborted and finds its own object.
    await o.remove(found.version).catch(() => {});
    throw fail();
  }
  const error = o.failure?.error;
  const mapped = error === undefined
    ? undefined
    : error instanceof StorageError
    ? error
    : o.map(error);
  if (!aborted && mapped?.reason === "AlreadyExists") {
    if (found) throw alreadyExists(error);
    throw new StorageError(
      "StorageError",
      "A write to this key conflicted with another writer and stored nothing",
      { cause: error },
    );
  }
  throw fail();
}
