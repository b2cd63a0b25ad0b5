/**
 * Storage URLs for the command line: `s3://bucket/prefix`, `gs://bucket/prefix`,
 * `azblob://account/container/prefix` and `file:///path`, with query options for
 * S3-compatible servers and emulators, e.g.
 * `s3://backups/prod?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true`.
 */
import { StorageError, type StorageLocation, validateKey } from "./store.ts";

/** A parsed storage URL: where, and the key prefix inside it ("" or ending in '/'). */
export interface ParsedStorageUrl {
  location: StorageLocation;
  prefix: string;
}

const OPTIONS: Record<string, readonly string[]> = {
  "s3:": ["endpoint", "region", "forcePathStyle"],
  "gs:": ["endpoint", "project"],
  "azblob:": ["endpoint"],
  "file:": [],
};

/** Parses a storage URL; throws StorageError("InvalidConfiguration") saying what is wrong. */
export function parseStorageUrl(input: string): ParsedStorageUrl {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw invalid("it is not a URL (expected s3://, gs://, azblob:// or file://)");
  }
  const allowed = OPTIONS[url.protocol];
  if (!allowed) {
    throw invalid(`unsupported scheme "${url.protocol}" (expected s3, gs, azblob or file)`);
  }
  const q: Record<string, string> = {};
  for (const [k, v] of url.searchParams) {
    if (!allowed.includes(k)) throw invalid(`unknown option "${k}" for ${url.protocol}//`);
    q[k] = v;
  }
  if (url.username || url.password) throw invalid("credentials do not belong in the URL");
  const host = decodeURIComponent(url.hostname);
  const segments = url.pathname.split("/").filter((s) => s !== "").map(decodeURIComponent);
  switch (url.protocol) {
    case "s3:": {
      const bucket = need(host, "bucket");
      const s3: NonNullable<StorageLocation["s3"]> = { bucket };
      if (q["endpoint"]) s3.endpoint = endpoint(q["endpoint"]);
      if (q["region"]) s3.region = q["region"];
      if (q["forcePathStyle"] !== undefined) s3.forcePathStyle = bool(q["forcePathStyle"]);
      return { location: { s3 }, prefix: prefixOf(segments) };
    }
    case "gs:": {
      const gcs: NonNullable<StorageLocation["gcs"]> = { bucket: need(host, "bucket") };
      if (q["endpoint"]) gcs.endpoint = endpoint(q["endpoint"]);
      if (q["project"]) gcs.project = q["project"];
      return { location: { gcs }, prefix: prefixOf(segments) };
    }
    case "azblob:": {
      const storageAccount = need(host, "storage account");
      const container = need(segments[0] ?? "", "container");
      const azure: NonNullable<StorageLocation["azure"]> = { storageAccount, container };
      if (q["endpoint"]) azure.endpoint = endpoint(q["endpoint"]);
      return { location: { azure }, prefix: prefixOf(segments.slice(1)) };
    }
    default: {
      if (host && host !== "localhost") throw invalid("file URLs must not name a host");
      if (segments.length === 0) throw invalid("a file URL needs a directory path");
      if (segments.some((s) => s === "." || s === "..")) {
        throw invalid("the path must not contain '.' or '..' segments");
      }
      return { location: { local: { path: "/" + segments.join("/") } }, prefix: "" };
    }
  }
}

function prefixOf(segments: string[]): string {
  const prefix = segments.length ? segments.join("/") + "/" : "";
  validateKey(prefix, "prefix");
  return prefix;
}

function need(value: string, what: string): string {
  if (!value) throw invalid(`the ${what} is missing`);
  return value;
}

function endpoint(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw invalid("endpoint is not a URL");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw invalid("endpoint must be http(s)");
  return value.replace(/\/+$/, "");
}

function bool(value: string): boolean {
  if (["true", "1", "yes", ""].includes(value)) return true;
  if (["false", "0", "no"].includes(value)) return false;
  throw invalid(`"${value}" is not a boolean`);
}

function invalid(why: string): StorageError {
  return new StorageError("InvalidConfiguration", `Invalid storage URL: ${why}`);
}
