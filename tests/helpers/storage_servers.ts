/**
 * Real storage servers for tests: MinIO (S3), fake-gcs-server (GCS) and Azurite (Azure Blob),
 * each on a free loopback port with a temporary data directory.
 *
 * ```ts
 * await using minio = await startMinio();
 * await minio.createBucket("backups");
 * const store = minio.makeStore({ bucket: "backups" });
 * ```
 *
 * Binaries come from scripts/install-storage-servers.sh (cached outside the repo; the first run
 * builds them). Disposing kills the server and removes its data, also when the test failed.
 */
import { budget } from "./timeouts.ts";
import { Buffer } from "node:buffer";
import { freePort } from "./free_port.ts";
import { createStore } from "../../storage/factory.ts";
import type { ObjectStore, StaticCredentials, StorageLocation } from "../../storage/store.ts";

/** A running storage server; `await using` stops it and removes its data. */
export interface StorageServer extends AsyncDisposable {
  readonly provider: "s3" | "gcs" | "azure";
  /** Base URL of the server's API. */
  readonly endpoint: string;
  /** Static credentials accepted by the server (empty for fake-gcs-server, which has none). */
  readonly credentials: StaticCredentials;
  /** The StorageLocation of a bucket (container) on this server. */
  location(bucket: string): StorageLocation;
  /** Creates a bucket (container); succeeds when it exists. */
  createBucket(name: string): Promise<void>;
  /**
   * A store on `bucket` (default "test") with the server's static credentials; `endpoint`
   * reaches the server through something else (a proxy).
   */
  makeStore(
    opts?: { bucket?: string; credentials?: StaticCredentials; endpoint?: string },
  ): ObjectStore;
  /** The server's output so far. */
  readLog(): Promise<string>;
  /**
   * Stops the server, keeping its data (`hard`: SIGKILL, like a crash), for tests of a
   * server that goes away mid-upload; `start()` brings it back on the same port.
   */
  stop(opts?: { hard?: boolean }): Promise<void>;
  start(): Promise<void>;
  /**
   * SIGSTOPs the server (a hung process): the kernel still accepts connections on its port,
   * but nothing answers them until `resume()` (SIGCONT).
   */
  pause(): void;
  resume(): void;
  running(): boolean;
}

/** MinIO's root user, also used as the static S3 key pair. */
export const MINIO_USER = "dbtether-test";
export const MINIO_PASSWORD = "dbtether-test-secret";
/** Azurite's well-known development account. */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/**
 * The multipart uploads a MinIO server still holds in `bucket` (those under `prefix`), read
 * with the AWS SDK and the root credentials: what an aborted upload may have left behind.
 */
export async function openUploads(minio: StorageServer, o: { bucket: string; prefix?: string }) {
  const { ListMultipartUploadsCommand } = await import("@aws-sdk/client-s3");
  const client = await minioClient(minio.endpoint);
  try {
    const list = new ListMultipartUploadsCommand({ Bucket: o.bucket, Prefix: o.prefix });
    return (await client.send(list)).Uploads ?? [];
  } finally {
    client.destroy();
  }
}

/** Options of {@link startMinio}. */
export interface MinioOptions {
  /**
   * Serve https with this certificate (its SANs must hold IP:127.0.0.1). The readiness probe
   * and createBucket trust `caPem`; a store from makeStore, like the program, needs the CA in
   * NODE_EXTRA_CA_CERTS of its process.
   */
  tls?: { certFile: string; keyFile: string; caPem: string };
}

/** Starts MinIO (single drive, which supports multipart uploads). */
export async function startMinio(opts: MinioOptions = {}): Promise<StorageServer> {
  const cmd = await storageServerBinary("minio");
  const port = freePort();
  const tls = opts.tls;
  const endpoint = `${tls ? "https" : "http"}://127.0.0.1:${port}`;
  const proc = await startProcess({
    name: "minio",
    cmd,
    args: (dir) => [
      "server",
      `${dir}/data`,
      "--address",
      `127.0.0.1:${port}`,
      "--console-address",
      `127.0.0.1:${freePort()}`,
      // MinIO reads public.crt and private.key from this directory (prepared below).
      ...(tls ? ["--certs-dir", `${dir}/certs`] : []),
      "--quiet",
    ],
    env: (dir) => ({
      MINIO_ROOT_USER: MINIO_USER,
      MINIO_ROOT_PASSWORD: MINIO_PASSWORD,
      MINIO_BROWSER: "off",
      MINIO_UPDATE: "off",
      MINIO_CI_CD: "1",
      HOME: dir,
    }),
    ready: `${endpoint}/minio/health/ready`,
    ...(tls
      ? {
        caPem: tls.caPem,
        prepare: async (dir: string) => {
          await Deno.mkdir(`${dir}/certs`, { recursive: true });
          await Deno.copyFile(tls.certFile, `${dir}/certs/public.crt`);
          await Deno.copyFile(tls.keyFile, `${dir}/certs/private.key`);
        },
      }
      : {}),
  });
  const credentials = { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD };
  const location = (bucket: string): StorageLocation => ({
    s3: { bucket, endpoint, region: "us-east-1", forcePathStyle: true },
  });
  return server("s3", endpoint, credentials, location, proc, async (name) => {
    const { CreateBucketCommand } = await import("@aws-sdk/client-s3");
    const client = await minioClient(endpoint, tls?.caPem);
    try {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    } catch (e) {
      if ((e as Error).name !== "BucketAlreadyOwnedByYou") throw e;
    } finally {
      client.destroy();
    }
  });
}

/**
 * An AWS SDK client on a MinIO server with the root credentials; over https it trusts `caPem`
 * through its own agent (this process's Node https trusts a test CA no other way).
 */
export async function minioClient(endpoint: string, caPem?: string) {
  const { S3Client } = await import("@aws-sdk/client-s3");
  const https = caPem ? await import("node:https") : undefined;
  return new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD },
    ...(https ? { requestHandler: { httpsAgent: new https.Agent({ ca: caPem }) } } : {}),
  });
}

/** Starts fake-gcs-server (no authentication; any bearer token is accepted). */
export async function startFakeGcs(): Promise<StorageServer> {
  const cmd = await storageServerBinary("fake-gcs-server");
  const port = freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const proc = await startProcess({
    name: "fake-gcs-server",
    cmd,
    args: (dir) => [
      "-scheme",
      "http",
      "-host",
      "127.0.0.1",
      "-port",
      String(port),
      "-backend",
      "filesystem",
      "-filesystem-root",
      `${dir}/data`,
      "-public-host",
      `127.0.0.1:${port}`,
      "-external-url",
      endpoint,
      "-log-level",
      "warn",
    ],
    env: () => ({}),
    ready: `${endpoint}/storage/v1/b`,
  });
  const location = (bucket: string): StorageLocation => ({
    gcs: { bucket, endpoint, project: "test" },
  });
  return server("gcs", endpoint, {}, location, proc, async (name) => {
    const res = await fetch(`${endpoint}/storage/v1/b?project=test`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name }),
    });
    await res.body?.cancel();
    if (!res.ok && res.status !== 409) {
      throw new Error(`Cannot create bucket "${name}" on fake-gcs-server: HTTP ${res.status}`);
    }
  });
}

/** Options of {@link startAzurite}. */
export interface AzuriteOptions {
  /**
   * Serve https with this certificate, and accept OAuth bearer tokens (`--oauth basic`: the
   * token's issuer, audience and lifetime are checked, not its signature). The Azure SDK
   * sends bearer tokens only over https, so workload-identity tests need both. Node's https
   * in this process must trust `caPem` (NODE_EXTRA_CA_CERTS) for createBucket to work.
   */
  tls?: { certFile: string; keyFile: string; caPem: string };
}

/** Starts Azurite's blob service with the well-known devstoreaccount1 account. */
export async function startAzurite(opts: AzuriteOptions = {}): Promise<StorageServer> {
  const cmd = await storageServerBinary("azurite-blob");
  const port = freePort();
  const scheme = opts.tls ? "https" : "http";
  const endpoint = `${scheme}://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const tls = opts.tls;
  const proc = await startProcess({
    name: "azurite",
    cmd,
    args: (dir) => [
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      String(port),
      "--location",
      `${dir}/data`,
      "--skipApiVersionCheck",
      "--loose",
      "--disableProductStyleUrl",
      ...(tls ? ["--cert", tls.certFile, "--key", tls.keyFile, "--oauth", "basic"] : []),
    ],
    env: () => ({}),
    // Any HTTP answer (400 without a container) means the server is listening.
    ready: `${endpoint}?comp=list`,
    readyStatus: (s) => s < 500,
    ...(tls ? { caPem: tls.caPem } : {}),
  });
  const credentials = { accountKey: AZURITE_KEY };
  const location = (container: string): StorageLocation => ({
    azure: { storageAccount: AZURITE_ACCOUNT, container, endpoint },
  });
  return server("azure", endpoint, credentials, location, proc, async (name) => {
    const { StorageSharedKeyCredential, ContainerClient } = await import("@azure/storage-blob");
    const cred = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
    await new ContainerClient(`${endpoint}/${name}`, cred).createIfNotExists();
  });
}

function server(
  provider: "s3" | "gcs" | "azure",
  endpoint: string,
  credentials: StaticCredentials,
  location: (bucket: string) => StorageLocation,
  proc: Proc,
  createBucket: (name: string) => Promise<void>,
): StorageServer {
  return {
    provider,
    endpoint,
    credentials,
    location,
    createBucket,
    makeStore: (opts = {}) =>
      createStore(at(location(opts.bucket ?? "test"), opts.endpoint), {
        // fake-gcs-server has no credentials: the client then sends none to the emulator.
        credentials: opts.credentials ??
          (Object.keys(credentials).length ? credentials : undefined),
        // Small parts, chunks and blocks, so a put that fails after 6 MiB has already sent
        // some of them: the "nothing left behind" checks then test something.
        s3: { partSize: 5 * 1024 * 1024 },
        gcs: { chunkSize: 1024 * 1024 },
        azure: { blockSize: 1024 * 1024 },
      }),
    readLog: () => Deno.readTextFile(proc.logFile),
    stop: (opts) => proc.stop(opts),
    start: () => proc.start(),
    pause: () => proc.signal("SIGSTOP"),
    resume: () => proc.signal("SIGCONT"),
    running: () => proc.running(),
    [Symbol.asyncDispose]: () => proc.dispose(),
  };
}

/** `location` with its endpoint replaced by `endpoint`, when given. */
function at(location: StorageLocation, endpoint: string | undefined): StorageLocation {
  if (!endpoint) return location;
  if (location.s3) return { s3: { ...location.s3, endpoint } };
  if (location.gcs) return { gcs: { ...location.gcs, endpoint } };
  if (location.azure) return { azure: { ...location.azure, endpoint } };
  return location;
}

// ------------------------------------------------------------------------------------------
// A proxy that acts on the request completing an object

/** A store behind a proxy that can act on the request completing an object. */
export interface CommitProxy extends AsyncDisposable {
  /** The server's endpoint through the proxy. */
  readonly endpoint: string;
  /** A store on `bucket` (default "test") through the proxy. */
  readonly store: ObjectStore;
  /**
   * Arms the next completing request (S3 PutObject or CompleteMultipartUpload, the last chunk
   * of a GCS resumable upload, Azure Put Blob or Put Block List): once the server has answered
   * it in full, `fn` runs before the answer is passed on; with `drop` the connection is closed
   * instead, as if the answer was lost. Resolves when that request was handled.
   */
  atNextCommit(fn: () => void, opts?: { drop?: boolean }): Promise<void>;
}

/**
 * Starts a loopback HTTP proxy in front of `server`. It forwards requests unchanged (the Host
 * header too, which S3 signatures cover) and rewrites the upload URLs GCS hands out, so the
 * chunks of a resumable upload pass through it as well.
 */
export async function startCommitProxy(
  server: StorageServer,
  opts: { bucket?: string } = {},
): Promise<CommitProxy> {
  const http = await import("node:http");
  const upstream = new URL(server.endpoint);
  const port = freePort();
  const endpoint = server.endpoint.replace(upstream.host, `127.0.0.1:${port}`);
  let armed: { fn: () => void; drop: boolean; done: () => void } | undefined;
  const rewrite = (headers: Record<string, string | string[] | undefined>) => {
    const out = { ...headers };
    for (const h of ["location", "x-goog-upload-url"]) {
      const v = out[h];
      if (typeof v === "string") out[h] = v.replace(upstream.origin, new URL(endpoint).origin);
    }
    return out;
  };
  const proxy = http.createServer((req, res) => {
    const commit = isCommit(server.provider, req.method ?? "", req.url ?? "", req.headers);
    const up = http.request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
    }, async (answer) => {
      const arm = commit ? armed : undefined;
      if (!arm) {
        res.writeHead(answer.statusCode ?? 502, rewrite(answer.headers));
        answer.pipe(res);
        return;
      }
      armed = undefined;
      // The whole answer first: only then has the server surely completed the object.
      const chunks: Uint8Array[] = [];
      for await (const c of answer) chunks.push(c as Uint8Array);
      arm.fn();
      if (arm.drop) {
        // What a load balancer answers when the server's answer did not reach it.
        res.writeHead(502, { connection: "close", "content-length": "0" });
        res.end();
      } else {
        res.writeHead(answer.statusCode ?? 502, rewrite(answer.headers));
        res.end(Buffer.concat(chunks));
      }
      arm.done();
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(port, "127.0.0.1", r));
  const store = server.makeStore({ bucket: opts.bucket ?? "test", endpoint });
  return {
    endpoint,
    store,
    atNextCommit: (fn, o = {}) =>
      new Promise<void>((done) => (armed = { fn, drop: o.drop ?? false, done })),
    async [Symbol.asyncDispose]() {
      await store.close();
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    },
  };
}

function isCommit(
  provider: StorageServer["provider"],
  method: string,
  url: string,
  headers: Record<string, string | string[] | undefined>,
): boolean {
  const has = (param: string) => new RegExp(`[?&]${param}=`).test(url);
  switch (provider) {
    case "s3":
      return (method === "POST" && has("uploadId")) ||
        (method === "PUT" && !has("partNumber") && !has("uploadId") &&
          headers["x-amz-copy-source"] === undefined);
    case "gcs":
      // The last chunk is the one that states the total size: "bytes 0-99/100", "bytes */100".
      return method === "PUT" && has("upload_id") &&
        /\/\d+$/.test(String(headers["content-range"] ?? ""));
    case "azure":
      return method === "PUT" &&
        (/[?&]comp=blocklist/.test(url) ||
          (!has("comp") && headers["x-ms-blob-type"] !== undefined));
  }
}

// ------------------------------------------------------------------------------------------
// Binaries and processes

const binaries = new Map<string, Promise<string>>();

/**
 * The path of one server's binary (minio, fake-gcs-server, azurite-blob), installing it on
 * first use through scripts/install-storage-servers.sh (slow the very first time).
 */
export function storageServerBinary(
  name: "minio" | "fake-gcs-server" | "azurite-blob",
): Promise<string> {
  let p = binaries.get(name);
  if (!p) {
    p = (async () => {
      const script = new URL("../../scripts/install-storage-servers.sh", import.meta.url).pathname;
      const arg = name === "azurite-blob" ? "azurite" : name;
      const out = await new Deno.Command(script, {
        args: [arg],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error(`${script} ${arg} failed with exit code ${out.code}`);
      const line = new TextDecoder().decode(out.stdout).trim().split("\n")
        .find((l) => l.startsWith(`${name}=`));
      if (!line) throw new Error(`${script} did not print the path of ${name}`);
      return line.slice(name.length + 1);
    })();
    binaries.set(name, p);
  }
  return p;
}

interface Proc {
  readonly dir: string;
  readonly logFile: string;
  /** Kills the server (SIGKILL when `hard`), keeping its data. */
  stop(opts?: { hard?: boolean }): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Sends `signal` to the running server (none when it is stopped). */
  signal(signal: "SIGSTOP" | "SIGCONT"): void;
  running(): boolean;
  /** Stops it and removes its data. */
  dispose(): Promise<void>;
}

interface ProcSpec {
  name: string;
  cmd: string;
  args: (dir: string) => string[];
  env: (dir: string) => Record<string, string>;
  ready: string;
  readyStatus?: (status: number) => boolean;
  /** A CA the readiness check must trust (the server speaks https). */
  caPem?: string;
  /** Fills the server's directory (certificates) before its first start. */
  prepare?: (dir: string) => Promise<void>;
}

async function startProcess(spec: ProcSpec): Promise<Proc> {
  const dir = await Deno.makeTempDir({ prefix: `dbtether-${spec.name}-` });
  await Deno.mkdir(`${dir}/data`);
  try {
    await spec.prepare?.(dir);
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
  const logFile = `${dir}/server.log`;
  let current: { child: Deno.ChildProcess; drained: Promise<unknown> } | undefined;

  const start = async () => {
    if (current) return;
    const child = new Deno.Command(spec.cmd, {
      args: spec.args(dir),
      env: spec.env(dir),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Each pipe gets its own append-mode handle of the log file (a WritableStream takes one
    // writer); both streams end when the process exits.
    const drain = async (from: ReadableStream<Uint8Array>) => {
      const file = await Deno.open(logFile, { write: true, create: true, append: true });
      await from.pipeTo(file.writable).catch(() => {});
    };
    current = { child, drained: Promise.all([drain(child.stdout), drain(child.stderr)]) };
    try {
      await waitReady(spec, child, logFile);
    } catch (e) {
      await stop({ hard: true });
      throw e;
    }
  };
  const stop = async (opts: { hard?: boolean } = {}) => {
    const proc = current;
    if (!proc) return;
    current = undefined;
    const kill = (signal: Deno.Signal) => {
      try {
        proc.child.kill(signal);
      } catch {
        // already exited
      }
    };
    // A paused server takes no SIGTERM until it is continued.
    kill("SIGCONT");
    kill(opts.hard ? "SIGKILL" : "SIGTERM");
    const timer = setTimeout(() => kill("SIGKILL"), 5_000);
    await proc.child.status;
    clearTimeout(timer);
    await proc.drained;
  };
  const dispose = async () => {
    await stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await start();
  } catch (e) {
    await dispose();
    throw e;
  }
  const signal = (sig: "SIGSTOP" | "SIGCONT") => current?.child.kill(sig);
  return { dir, logFile, start, stop, signal, running: () => current !== undefined, dispose };
}

async function waitReady(spec: ProcSpec, child: Deno.ChildProcess, logFile: string) {
  let exited = false;
  child.status.then(() => (exited = true), () => (exited = true));
  const deadline = Date.now() + budget("ready");
  const ok = spec.readyStatus ?? ((s: number) => s >= 200 && s < 300);
  const client = spec.caPem ? Deno.createHttpClient({ caCerts: [spec.caPem] }) : undefined;
  try {
    while (Date.now() < deadline) {
      if (exited) {
        const log = await Deno.readTextFile(logFile).catch(() => "");
        throw new Error(`${spec.name} exited during startup:\n${log.slice(-2000)}`);
      }
      try {
        const res = await fetch(spec.ready, {
          signal: AbortSignal.timeout(2_000),
          ...(client ? { client } : {}),
        });
        await res.body?.cancel();
        if (ok(res.status)) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${spec.name} did not become ready within 60 s`);
  } finally {
    client?.close();
  }
}
