/**
 * The S3 backend's upload: a single PutObject for a stream that fits one part, else our own
 * multipart loop on `@aws-sdk/client-s3` rather than lib-storage's Upload. Parts are copied into
 * a few reused buffers (lib-storage concatenates the stream's chunks into a fresh buffer per
 * part and keeps the remainder's whole backing store alive), and the part size grows as the
 * upload proceeds, so small dumps use small parts while a 10,000-part upload still reaches
 * ~4.9 TiB. Memory: about (queueSize + 1) × 5 MiB up to 5 GiB, see PARTS_PER_STEP.
 *
 * Both completing requests carry `If-None-Match: *` (no_overwrite.ts). A failed upload aborts
 * its multipart upload by id once the in-flight parts were cancelled, so it leaves none behind.
 */
import type * as S3Sdk from "@aws-sdk/client-s3";
import type { CompletedPart, S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../lib/log.ts";
import type { MapError } from "./errors.ts";
import { type PutOptions, StorageError, type TrackedSource } from "./store.ts";

const MiB = 1024 * 1024;
/** S3's limits: parts of 5 MiB to 5 GiB (but the last), at most 10,000 of them. */
export const MIN_PART = 5 * MiB;
export const MAX_PART = 5 * 1024 * MiB;
/**
 * The part size doubles every this many parts: 1,000 parts of 5 MiB cover 5 GiB, and 10,000
 * parts starting at 5 MiB cover 4.9 TiB (5 MiB × 1,000 × (2^10 − 1)), near S3's 5 TiB limit.
 */
const PARTS_PER_STEP = 1000;

/** The SDK and the bucket an upload talks to. */
export interface S3Session {
  m: typeof S3Sdk;
  client: S3Client;
  bucket: string;
  logger?: Logger | undefined;
  /** Maps an SDK error; `what` says whether a 404 means the object or the bucket. */
  map: MapError;
}

/** How an upload cuts its stream. */
export interface PartTuning {
  /** The first part size; doubles every 1,000 parts. */
  partSize: number;
  /** Parts in flight while the part size is the first one. */
  queueSize: number;
}

/** One upload of {@link uploadObject}. */
export interface UploadRequest {
  key: string;
  source: TrackedSource;
  opts: PutOptions;
  tuning: PartTuning;
}

/**
 * Uploads `u.source` as a new object, conditional on the key being free. In-flight requests
 * are cancelled when anything fails (a part, the source).
 */
export async function uploadObject(s: S3Session, u: UploadRequest): Promise<void> {
  const requests = new AbortController();
  // The put's signal cancels the requests too: a small object's single PutObject no longer
  // reads the stream, so only this reaches it (a stalled server, storage/stall_guard.ts).
  const signal = u.opts.signal;
  const onAbort = () => requests.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await send(s, u, requests);
  } catch (e) {
    requests.abort(e);
    throw e;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

async function send(s: S3Session, u: UploadRequest, requests: AbortController): Promise<void> {
  const target = { Bucket: s.bucket, Key: u.key };
  const options = { abortSignal: requests.signal };
  const parts = new PartReader(u.source.stream);
  const first = await parts.next(u.tuning.partSize);
  const headers = {
    ...(u.opts.contentType ? { ContentType: u.opts.contentType } : {}),
    ...(u.opts.metadata ? { Metadata: u.opts.metadata } : {}),
  };
  if (first.last) {
    const put = { ...target, ...headers, ...partBody(first.data), IfNoneMatch: "*" };
    await s.client.send(new s.m.PutObjectCommand(put), options);
    return;
  }
  const created = await s.client.send(
    new s.m.CreateMultipartUploadCommand({ ...target, ...headers }),
    options,
  );
  const uploadId = created.UploadId;
  if (!uploadId) throw new StorageError("StorageError", "S3 returned no multipart upload id");
  try {
    const upload = { ...target, UploadId: uploadId };
    const done = await uploadParts({ s, upload, requests, tuning: u.tuning }, parts, first);
    await s.client.send(
      new s.m.CompleteMultipartUploadCommand({
        ...upload,
        MultipartUpload: { Parts: done },
        IfNoneMatch: "*",
      }),
      options,
    );
  } catch (e) {
    requests.abort(e);
    await abortUpload(s, { key: u.key, uploadId });
    throw e;
  }
}

interface PartsContext {
  s: S3Session;
  upload: { Bucket: string; Key: string; UploadId: string };
  requests: AbortController;
  tuning: PartTuning;
}

/** Uploads `first` and every following part, a bounded number at a time; in part order. */
async function uploadParts(
  c: PartsContext,
  parts: PartReader,
  first: Part,
): Promise<CompletedPart[]> {
  const { s, tuning } = c;
  const done: CompletedPart[] = [];
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let part = first;
  for (let n = 1;; n++) {
    if (part.data.byteLength === 0 && n > 1) break; // the input ended on a part boundary
    const PartNumber = n;
    const { data } = part;
    const request = s.client.send(
      new s.m.UploadPartCommand({ ...c.upload, PartNumber, ...partBody(data) }),
      { abortSignal: c.requests.signal },
    ).then((res) => {
      done.push({ PartNumber, ...(res.ETag ? { ETag: res.ETag } : {}) });
      parts.recycle(data.buffer as ArrayBuffer);
    }).catch((error: unknown) => {
      failure ??= { error };
      c.requests.abort(error);
    }).finally(() => running.delete(request));
    running.add(request);
    if (part.last) break;
    const size = partSize(tuning.partSize, n + 1);
    // Bytes in flight stay at queueSize × the first part size (at least one part).
    const limit = Math.max(1, Math.floor((tuning.queueSize * tuning.partSize) / size));
    while (running.size >= limit && !failure) await Promise.race(running);
    if (failure) break;
    part = await parts.next(size);
  }
  await Promise.all(running);
  if (failure) throw failure.error;
  return done.sort((a, b) => a.PartNumber! - b.PartNumber!);
}

/** Options of {@link abortUpload}. */
export interface AbortUploadOptions {
  key: string;
  uploadId: string;
  /** Throw a failure instead of logging it. */
  throwOnError?: boolean;
  signal?: AbortSignal | undefined;
}

/** Aborts one multipart upload; one that is gone already is fine. */
export async function abortUpload(s: S3Session, o: AbortUploadOptions): Promise<void> {
  try {
    await s.client.send(
      new s.m.AbortMultipartUploadCommand({ Bucket: s.bucket, Key: o.key, UploadId: o.uploadId }),
      o.signal ? { abortSignal: o.signal } : {},
    );
  } catch (e) {
    // NoSuchUpload: it was aborted already.
    if (s.map(e, "object").reason === "NotFound") return;
    if (o.throwOnError) throw e;
    s.logger?.warn("Cannot abort an incomplete multipart upload", {
      bucket: s.bucket,
      error: s.map(e, "bucket").message,
    });
  }
}

/** Size of part `n` (1-based): `first`, doubled every PARTS_PER_STEP parts, at most 5 GiB. */
export function partSize(first: number, n: number): number {
  return Math.min(MAX_PART, first * 2 ** Math.floor((n - 1) / PARTS_PER_STEP));
}

function partBody(data: Uint8Array) {
  return { Body: data, ContentLength: data.byteLength };
}

interface Part {
  data: Uint8Array;
  /** The source ended with this part. */
  last: boolean;
}

/**
 * Cuts a stream into parts, copying its chunks into reused buffers: a buffer comes back through
 * `recycle` once its part was uploaded.
 */
class PartReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #spare: ArrayBuffer[] = [];
  #leftover: Uint8Array | undefined;

  constructor(source: ReadableStream<Uint8Array>) {
    this.#reader = source.getReader();
  }

  async next(size: number): Promise<Part> {
    let buf = this.#spare.pop();
    if (!buf || buf.byteLength !== size) buf = new ArrayBuffer(size);
    let length = 0;
    while (length < size) {
      const chunk = this.#leftover ?? (await this.#reader.read()).value;
      if (!chunk) return { data: new Uint8Array(buf, 0, length), last: true };
      const n = Math.min(chunk.byteLength, size - length);
      new Uint8Array(buf, length, n).set(chunk.subarray(0, n));
      this.#leftover = n < chunk.byteLength ? chunk.subarray(n) : undefined;
      length += n;
    }
    return { data: new Uint8Array(buf), last: false };
  }

  recycle(buf: ArrayBuffer): void {
    this.#spare.push(buf);
  }
}
