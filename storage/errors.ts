/**
 * What the backends share in turning a failure into a {@link StorageError}: the network error
 * codes that mean "unreachable", one builder for the messages (so S3's, GCS's and Azure's
 * "access denied" read alike and name no key and no secret), the refusal of a put to a taken
 * key, and {@link guarded}, which every call but put goes through for its signal and its error
 * mapping.
 *
 * Each cloud backend keeps its own classifier (which SDK name, code or status means what):
 * that part differs per SDK; how the classification becomes an error does not.
 */
import { type CallOptions, StorageError, type StorageErrorReason } from "./store.ts";

export { NETWORK_ERROR_CODES, unreachableCodes } from "../lib/network.ts";

/** Where a backend's objects live, as its messages name it: `S3 bucket "backups"`. */
export interface StoreScope {
  provider: "S3" | "GCS" | "Azure";
  noun: "bucket" | "container";
  name: string;
}

/**
 * What a backend's classifier made of an SDK error. The common reasons get their message from
 * {@link storageErrorOf}; `detail` is the safe part a backend adds (an error name, a status).
 * A verdict with its own `message` is for what only that backend says.
 */
export type Verdict =
  | { reason: "BucketNotFound" | "NotFound" | "AlreadyExists" }
  | { reason: "AccessDenied" | "Unreachable" | "Unavailable" | "StorageError"; detail: string }
  | { reason: StorageErrorReason; message: string };

/** Builds the StorageError of a verdict, with `e` as its cause. */
export function storageErrorOf(e: unknown, verdict: Verdict, scope: StoreScope): StorageError {
  if ("message" in verdict) return new StorageError(verdict.reason, verdict.message, { cause: e });
  const where = `${scope.noun} "${scope.name}"`;
  const [reason, message] = ((): [StorageErrorReason, string] => {
    switch (verdict.reason) {
      case "BucketNotFound":
        return [verdict.reason, `${scope.provider} ${where} does not exist`];
      case "NotFound":
        return [verdict.reason, "Object not found"];
      case "AlreadyExists":
        return [verdict.reason, ALREADY_EXISTS];
      case "AccessDenied":
        return [verdict.reason, `${scope.provider} access to ${where} denied: ${verdict.detail}`];
      case "Unreachable":
        return [verdict.reason, `${scope.provider} endpoint is unreachable: ${verdict.detail}`];
      case "Unavailable":
        return [
          verdict.reason,
          `${scope.provider} ${where} is unavailable: the storage answered ${verdict.detail} ` +
          `(overloaded, throttling or in maintenance)`,
        ];
      case "StorageError":
        return [verdict.reason, `${scope.provider} request failed: ${verdict.detail}`];
    }
  })();
  return new StorageError(reason, message, { cause: e });
}

/**
 * Node's codes for a server certificate that chains to no CA this process trusts: a private or
 * self-signed CA the pod was not given.
 */
const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
]);

/** Node's codes for a certificate that is trusted but not valid for this endpoint or now. */
const INVALID_CERT_CODES: ReadonlySet<string> = new Set([
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_SIGNATURE_FAILURE",
]);

/** Where the operations guide tells how to trust a private CA. */
export const PRIVATE_CA_DOC = 'docs/operations.md, "Object storage with a private CA"';

/**
 * The verdict on what fails before a request leaves the process, the same on every SDK, or
 * undefined: a TLS handshake refused on the server's certificate, or a Deno permission the
 * program lacks. The SDKs pass Node's error on, as it is or as the `cause` of their own. An
 * untrusted certificate is Unreachable (no request reached the storage; retried, since
 * mounting the CA heals it without a spec change), with a message that says what to do.
 */
export function transportVerdict(
  e: unknown,
  provider: StoreScope["provider"],
): Verdict | undefined {
  const denied = notCapable(e);
  if (denied) {
    // Deno's message names the permission ('Requires sys access to "ca", ...') and no secret.
    return {
      reason: "StorageError",
      message: `${provider} request failed: the program lacks a Deno permission ` +
        `(scripts/permissions.sh): ${denied.message}`,
    };
  }
  const code = tlsCode(e);
  if (!code) return undefined;
  if (UNTRUSTED_CERT_CODES.has(code)) {
    return {
      reason: "Unreachable",
      message: `${provider} endpoint's TLS certificate is not trusted: ${code}; if a private ` +
        "CA signed it, give the program the CA bundle in NODE_EXTRA_CA_CERTS " +
        `(${PRIVATE_CA_DOC})`,
    };
  }
  return {
    reason: "Unreachable",
    message: `${provider} endpoint's TLS certificate is not valid for it: ${code}`,
  };
}

/** Deno's NotCapable (a permission not granted) in `e` or one of its causes, or undefined. */
function notCapable(e: unknown): Error | undefined {
  for (let x = e, depth = 0; x instanceof Error && depth < 4; depth++) {
    if (x instanceof Deno.errors.NotCapable || x.name === "NotCapable") return x;
    x = x.cause;
  }
  return undefined;
}

/** The TLS certificate code of `e` or of one of its causes, or undefined. */
function tlsCode(e: unknown): string | undefined {
  for (let x = e, depth = 0; x && typeof x === "object" && depth < 4; depth++) {
    const code = (x as { code?: unknown }).code;
    if (
      typeof code === "string" && (UNTRUSTED_CERT_CODES.has(code) || INVALID_CERT_CODES.has(code))
    ) {
      return code;
    }
    x = (x as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Whether an HTTP status says the storage cannot serve now but answered: 503 (unavailable, S3's
 * SlowDown) or 429 (too many requests).
 */
export function unavailableStatus(status: number | undefined): boolean {
  return status === 503 || status === 429;
}

/**
 * The detail of an "unavailable" answer: the HTTP status and the service's error code when it
 * sent one (`HTTP 503 SlowDown`); an SDK's placeholder for a body-less answer is left out.
 */
export function unavailableDetail(status: number | undefined, code: string | undefined): string {
  const named = code && !PLACEHOLDER_NAMES.has(code) ? ` ${code}` : "";
  return `${status ? `HTTP ${status}` : "an error"}${named}`;
}

/** What SDKs call an error they could not name (a HEAD's 503 has no body to name it). */
const PLACEHOLDER_NAMES = new Set(["Unknown", "UnknownError", "Error"]);

const ALREADY_EXISTS =
  "An object already exists at this key and is never overwritten: give each write its own " +
  "key (for a Backup, include {{ .RunID }} in filenameTemplate)";

/** The refusal of a put to a key that holds an object. */
export function alreadyExists(cause?: unknown): StorageError {
  return new StorageError(
    "AlreadyExists",
    ALREADY_EXISTS,
    cause === undefined ? undefined : { cause },
  );
}

/** The error of a call (other than put) whose signal fired. */
export function requestAborted(signal: AbortSignal): StorageError {
  return new StorageError("Aborted", "Storage request aborted", { cause: signal.reason });
}

/** What a backend's mapper is told: whether a 404 means the object or the bucket. */
export type Subject = "bucket" | "object";

/** Maps a failure that is not yet a StorageError. */
export type MapError = (e: unknown, what: Subject) => StorageError;

/** How one call runs under {@link guarded}. */
export interface CallPlan<T> extends CallOptions {
  /** What a 404 means; default the bucket. */
  what?: Subject;
  /** What the call returns when its failure maps to NotFound; absent: it throws. */
  ifNotFound?: () => T;
}

/**
 * Runs one store call under its signal: rejects with Aborted before it starts when the signal
 * has fired, and as soon as it fires during the call. The request itself is cancelled by the
 * signal `run` hands to its SDK; where an SDK takes none (GCS, the file system) it runs on and
 * its result is dropped. Any other failure goes through `map`.
 */
export async function guarded<T>(
  run: () => Promise<T>,
  map: MapError,
  plan: CallPlan<T> = {},
): Promise<T> {
  const signal = plan.signal;
  if (signal?.aborted) throw requestAborted(signal);
  try {
    return await untilAborted(run(), signal);
  } catch (e) {
    if (signal?.aborted) throw requestAborted(signal);
    const mapped = e instanceof StorageError ? e : map(e, plan.what ?? "bucket");
    if (plan.ifNotFound && mapped.reason === "NotFound") return plan.ifNotFound();
    throw mapped;
  }
}

/** `p`, or a rejection as soon as `signal` fires (`p`'s own outcome is then ignored). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(requestAborted(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** What a store call does, as a failure's message names it. */
export type StorageOperation =
  | "upload"
  | "download"
  | "head"
  | "list"
  | "delete"
  | "probe"
  | "abort of incomplete uploads";

/**
 * The message of a failed store call that names where and what: `BackupStorage "archive":
 * upload failed: S3 endpoint is unreachable: ECONNREFUSED`. `subject` names the storage (its
 * namespace/name when it has a namespace); `message` is the backend's, which names no key and
 * no secret. A URL's query (where a presigned URL carries its signature) is cut off all the
 * same, should a backend's message ever quote one.
 */
export function failedOperationMessage(
  o: { subject: string; operation: StorageOperation; message: string },
): string {
  const message = o.message.replace(/\b(https?:\/\/[^\s?#"']*)[?#][^\s"']*/gi, "$1?…");
  return `${o.subject}: ${o.operation} failed: ${message}`;
}

/** How a message names a BackupStorage: `BackupStorage "ns/name"`, or its name alone. */
export function storageSubject(ref: { namespace?: string | undefined; name: string }): string {
  return `BackupStorage "${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}"`;
}
