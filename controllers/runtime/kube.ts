/**
 * A thin Kubernetes REST client on top of client-node's KubeConfig (authentication, TLS) and
 * undici (the HTTP client client-node itself uses). It speaks raw paths so every kind, built-in
 * or custom, goes through the same code, and maps API failures once into typed errors.
 *
 * Over 400 lines on purpose: the request shapes, the one `request` path (authentication, the
 * leader fence, timeouts, error mapping) and the watch stream that shares it stay in one place,
 * so no call can bypass the fence or the error mapping.
 */
import { HttpMethod, KubeConfig, RequestContext } from "@kubernetes/client-node";
import { fetch } from "undici";
import { systemClock } from "../../lib/clock.ts";
import type { Fence } from "../../lib/fence.ts";
import {
  AlreadyExistsError,
  ConflictError,
  errorMessage,
  ForbiddenError,
  GoneError,
  NotFoundError,
} from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";

/** How to address a resource type over the API. */
export interface Resource {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
  kind: string;
}

export const SecretResource: Resource = {
  group: "",
  version: "v1",
  plural: "secrets",
  namespaced: true,
  kind: "Secret",
};
export const EventResource: Resource = {
  group: "",
  version: "v1",
  plural: "events",
  namespaced: true,
  kind: "Event",
};
export const NamespaceResource: Resource = {
  group: "",
  version: "v1",
  plural: "namespaces",
  namespaced: false,
  kind: "Namespace",
};
export const LeaseResource: Resource = {
  group: "coordination.k8s.io",
  version: "v1",
  plural: "leases",
  namespaced: true,
  kind: "Lease",
};
export const CRDResource: Resource = {
  group: "apiextensions.k8s.io",
  version: "v1",
  plural: "customresourcedefinitions",
  namespaced: false,
  kind: "CustomResourceDefinition",
};

/** An API failure that is none of the typed ones. */
export class KubeApiError extends Error {
  override name = "KubeApiError";
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Asks for PartialObjectMetadata: only metadata travels and is cached (used for Secrets). */
const METADATA_LIST =
  "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
const METADATA_ONE =
  "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

export interface ListOptions extends CallOptions {
  namespace?: string;
  metadataOnly?: boolean;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export interface ListResult<T> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK";
  object: T;
}

export interface WatchOptions {
  namespace?: string;
  metadataOnly?: boolean;
  labelSelector?: string;
  resourceVersion?: string;
  timeoutSeconds?: number;
  /**
   * The watch ends (as if the server had closed it) when nothing arrives for this long; default
   * {@link WATCH_IDLE_MS}. A killed apiserver's watch connections are not always seen to close
   * (issue 13: after a SIGKILL of the apiserver, the stream stayed open with no error for the
   * whole 300 s a test waited), and an informer would then never hear of a change again.
   */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * How long a watch may go without a byte before it is re-opened from its last resourceVersion:
 * the bound on how long the program stays deaf after an apiserver restart it did not notice.
 * An idle watch costs one GET per resource this often.
 */
export const WATCH_IDLE_MS = 60_000;

/**
 * How long the apiserver may stay silent (no answer, no watch byte) before {@link
 * KubeClient.heartbeat} asks it for /version. A failed ask then the next answered one is an outage
 * seen, and ends every watch opened before it ({@link KubeClient.reconnected}): the bound on how
 * long a quiet program stays deaf after an apiserver restart, instead of {@link WATCH_IDLE_MS}.
 * It costs at most one GET /version this often, and none while anything arrives.
 */
export const HEARTBEAT_MS = 10_000;

interface RequestOptions {
  accept?: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** Instead of the client's `timeoutMs`. */
  timeoutMs?: number;
}

export const MERGE_PATCH = "application/merge-patch+json";
export const JSON_PATCH = "application/json-patch+json";
export const APPLY_PATCH = "application/apply-patch+yaml";

/** The field manager name our writes carry (server-side apply and managedFields). */
export const FIELD_MANAGER = "dbtether";

/** Per-call options of every request. */
export interface CallOptions {
  /** Aborts the request (it rejects with the signal's reason). */
  signal?: AbortSignal | undefined;
}

/** Which object: its namespace (absent for cluster-scoped kinds) and name. */
export interface ObjectRef {
  namespace?: string | undefined;
  name: string;
}

/** A read of one object. */
export type ObjectRequest = ObjectRef & CallOptions;

/** A create: the namespace (absent for cluster-scoped kinds) and the object. */
export interface CreateRequest extends CallOptions {
  namespace?: string | undefined;
  body: unknown;
}

/** A PUT or apply of one object. */
export interface WriteRequest extends ObjectRequest {
  body: unknown;
}

/** A PATCH of one object or one of its subresources. */
export interface PatchRequest extends WriteRequest {
  /** Default JSON merge patch. */
  contentType?: string;
  subresource?: string;
}

/** A delete of one object. */
export interface DeleteRequest extends ObjectRequest {
  /** Delete only the object with this uid (a precondition). */
  uid?: string | undefined;
  propagationPolicy?: "Background" | "Foreground" | "Orphan";
}

/** `{ signal }` when there is one (exactOptionalPropertyTypes forbids an explicit undefined). */
function signalOf(o: CallOptions): { signal?: AbortSignal } {
  return o.signal ? { signal: o.signal } : {};
}

export interface KubeClientOptions {
  /** Per-request limit; default 30 s. */
  timeoutMs?: number;
  /**
   * Every write (POST, PUT, PATCH, DELETE) passes this fence first, and every request is aborted
   * when it closes: a replica that lost the leader lease makes no further change.
   */
  fence?: Fence;
}

export class KubeClient {
  readonly #kc: KubeConfig;
  readonly #timeoutMs: number;
  readonly #fence: Fence | undefined;
  /** A request could not reach the apiserver, and none has reached it since. */
  #unreachable = false;
  #back = new AbortController();
  /** When the apiserver last answered a request or sent a watch byte (performance.now()). */
  #heard = performance.now();

  constructor(kc: KubeConfig, opts: KubeClientOptions = {}) {
    this.#kc = kc;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#fence = opts.fence;
  }

  get kubeConfig(): KubeConfig {
    return this.#kc;
  }

  /**
   * Aborts when a request reaches the apiserver after one could not (refused, reset, timed
   * out): the apiserver is back. Read it anew each time; every outage gets a new signal. The
   * informers wake from their backoff on it, and a watch opened before the outage ends on it,
   * since a killed apiserver's streams are not always seen to close (issue 13).
   */
  get reconnected(): AbortSignal {
    return this.#back.signal;
  }

  #sawFailure(): void {
    this.#unreachable = true;
  }

  /** True from a request that could not reach the apiserver until one that did. */
  get unreachable(): boolean {
    return this.#unreachable;
  }

  /**
   * Until `signal` aborts: whenever the apiserver has been silent for `intervalMs` (default
   * {@link HEARTBEAT_MS}), one GET /version, whose failure and later answer are an outage seen
   * like any request's. Watches alone cannot see one: a SIGKILLed apiserver's watch streams may
   * stay open with no error (issue 13), and a quiet program sends nothing else. /version is
   * readable by every authenticated identity (system:public-info-viewer): no RBAC is added.
   */
  async heartbeat(
    signal: AbortSignal,
    opts: { intervalMs?: number; logger?: Logger } = {},
  ): Promise<void> {
    const every = opts.intervalMs ?? HEARTBEAT_MS;
    let asked = -Infinity;
    let down = false;
    while (!signal.aborted) {
      const now = performance.now();
      // Since the last byte heard or the last ask: a refused ask is not asked again at once.
      const quiet = now - Math.max(this.#heard, asked);
      if (quiet >= every) {
        asked = now;
        const failed = await this.request("GET", "/version", { signal, timeoutMs: every })
          .then(() => undefined, (e: unknown) => e);
        if (signal.aborted) break;
        // One line when the outage is first seen and one when it ends: a quiet program says
        // nothing else meanwhile. An answer that is an error (a 403 where /version is locked
        // down) is no outage.
        if (this.#unreachable && !down) {
          opts.logger?.warn("Kubernetes API unreachable", { error: errorMessage(failed) });
        } else if (!this.#unreachable && down) opts.logger?.info("Kubernetes API answers again");
        down = this.#unreachable;
        continue;
      }
      await systemClock.sleep(every - quiet, signal).catch(() => {});
    }
  }

  #sawAnswer(): void {
    this.#heard = performance.now();
    if (!this.#unreachable) return;
    this.#unreachable = false;
    const back = this.#back;
    this.#back = new AbortController();
    back.abort(new Error("the Kubernetes API answers again"));
  }

  /** The API server's URL of the current context. */
  get server(): string {
    const c = this.#kc.getCurrentCluster();
    if (!c) throw new Error("Cannot reach Kubernetes: the kubeconfig has no current cluster");
    return c.server.replace(/\/$/, "");
  }

  /** The collection or object path of a resource. */
  path(res: Resource, namespace?: string, name?: string, sub?: string): string {
    const base = res.group ? `/apis/${res.group}/${res.version}` : `/api/${res.version}`;
    let p = base;
    if (res.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
    p += `/${res.plural}`;
    if (name) p += `/${encodeURIComponent(name)}`;
    if (sub) p += `/${sub}`;
    return p;
  }

  /** Reads one object. */
  async get<T>(res: Resource, o: ObjectRequest): Promise<T> {
    return await this.request<T>("GET", this.path(res, o.namespace, o.name), signalOf(o));
  }

  /** Like get, but undefined when the object does not exist. */
  async find<T>(res: Resource, o: ObjectRequest): Promise<T | undefined> {
    try {
      return await this.get<T>(res, o);
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  }

  async list<T>(res: Resource, opts: ListOptions = {}): Promise<ListResult<T>> {
    return await this.request<ListResult<T>>("GET", this.path(res, opts.namespace), {
      ...(opts.metadataOnly ? { accept: METADATA_LIST } : {}),
      ...signalOf(opts),
      query: {
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        limit: opts.limit,
        continue: opts.continue,
      },
    });
  }

  /** POST: fails with AlreadyExistsError when the name is taken. */
  async create<T>(res: Resource, o: CreateRequest): Promise<T> {
    return await this.request<T>("POST", this.path(res, o.namespace), {
      ...signalOf(o),
      body: o.body,
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** PUT: fails with ConflictError when `body.metadata.resourceVersion` is stale. */
  async replace<T>(res: Resource, o: WriteRequest): Promise<T> {
    return await this.request<T>("PUT", this.path(res, o.namespace, o.name), {
      ...signalOf(o),
      body: o.body,
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** PUT to the status subresource; ConflictError on a stale resourceVersion. */
  async replaceStatus<T>(res: Resource, o: WriteRequest): Promise<T> {
    return await this.request<T>("PUT", this.path(res, o.namespace, o.name, "status"), {
      ...signalOf(o),
      body: o.body,
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** PATCH with `contentType` (default JSON merge patch), optionally of a subresource. */
  async patch<T>(res: Resource, o: PatchRequest): Promise<T> {
    return await this.request<T>("PATCH", this.path(res, o.namespace, o.name, o.subresource), {
      ...signalOf(o),
      body: o.body,
      contentType: o.contentType ?? MERGE_PATCH,
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** Server-side apply with our field manager, forcing ownership of the fields we set. */
  async apply<T>(res: Resource, o: WriteRequest): Promise<T> {
    return await this.request<T>("PATCH", this.path(res, o.namespace, o.name), {
      ...signalOf(o),
      body: o.body,
      contentType: APPLY_PATCH,
      query: { fieldManager: FIELD_MANAGER, force: true },
    });
  }

  /** Deletes; a missing object is not an error. `uid` makes it a precondition. */
  async delete(res: Resource, o: DeleteRequest): Promise<void> {
    const body: Record<string, unknown> = { apiVersion: "v1", kind: "DeleteOptions" };
    if (o.uid) body.preconditions = { uid: o.uid };
    if (o.propagationPolicy) body.propagationPolicy = o.propagationPolicy;
    try {
      await this.request("DELETE", this.path(res, o.namespace, o.name), {
        ...signalOf(o),
        body,
      });
    } catch (e) {
      if (e instanceof NotFoundError) return;
      throw e;
    }
  }

  /**
   * Opens a watch and yields its events. Ends when the server closes the stream or nothing
   * arrives for `idleTimeoutMs`; throws GoneError when the resourceVersion is too old (in the
   * response or in the stream).
   */
  async *watch<T>(res: Resource, opts: WatchOptions): AsyncGenerator<WatchEvent<T>> {
    const query: Record<string, string | number | boolean | undefined> = {
      watch: true,
      allowWatchBookmarks: true,
      resourceVersion: opts.resourceVersion,
      timeoutSeconds: opts.timeoutSeconds ?? 300,
      labelSelector: opts.labelSelector,
    };
    // undici does not always end a body read when the request's signal aborts (seen after a
    // connection failure), so every wait below also races the signal itself.
    const idle = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, idle.signal]) : idle.signal;
    const idleMs = opts.idleTimeoutMs ?? WATCH_IDLE_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => idle.abort(new Error("watch idle")), idleMs);
    };
    arm();
    try {
      const response = await raceAbort(
        this.#send(
          "GET",
          this.path(res, opts.namespace),
          { query, ...(opts.metadataOnly ? { accept: METADATA_ONE } : {}) },
          signal,
        ),
        signal,
      );
      if (!response.body) return;
      // Opened now: an outage from here on (a request that fails, then one that answers) ends
      // this watch, as the idle timer would, only sooner.
      const back = this.#back.signal;
      const stream = AbortSignal.any([signal, back]);
      // undici's web stream types differ from the global ones only in typing.
      const body = response.body as unknown as ReadableStream<Uint8Array<ArrayBuffer>>;
      const reader = body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      try {
        for (;;) {
          if (back.aborted) return;
          const { value, done } = await raceAbort(reader.read(), stream).catch((e) => {
            if (back.aborted && !signal.aborted) return { value: undefined, done: true };
            throw e;
          });
          if (done) break;
          arm();
          this.#heard = performance.now();
          buffer += value;
          let nl: number;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (!line) continue;
            const ev = JSON.parse(line) as { type: string; object: Record<string, unknown> };
            if (ev.type === "ERROR") throw statusError(ev.object);
            yield ev as WatchEvent<T>;
          }
        }
      } finally {
        // Not awaited: cancelling the body of an aborted request can hang.
        reader.cancel().catch(() => {});
      }
    } catch (e) {
      // Idle: ended like a watch the server closed; the caller re-watches.
      if (idle.signal.aborted && !opts.signal?.aborted) return;
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** One request; JSON in, JSON out; failures mapped to typed errors. */
  async request<T>(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<T> {
    const fence = this.#fence;
    if (fence && method !== "GET") fence.check();
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    const limit = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any(
      [limit, opts.signal, fence?.signal].filter((s): s is AbortSignal => s !== undefined),
    );
    try {
      const response = await raceAbort(this.#send(method, path, opts, signal), signal);
      const text = await raceAbort(response.text(), signal);
      return (text ? JSON.parse(text) : undefined) as T;
    } catch (e) {
      if (limit.aborted && !opts.signal?.aborted) {
        this.#sawFailure();
        throw new KubeApiError(
          0,
          `Kubernetes API at ${this.server} did not answer ${method} ${path} within ${timeoutMs} ms`,
        );
      }
      throw e;
    }
  }

  async #send(
    method: HttpMethod,
    path: string,
    opts: RequestOptions,
    signal: AbortSignal | undefined,
  ) {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const ctx = new RequestContext(url.toString(), method);
    await this.#kc.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = {
      ...ctx.getHeaders(),
      accept: opts.accept ?? "application/json",
    };
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["content-type"] = opts.contentType ?? "application/json";
    }
    let response;
    try {
      const dispatcher = ctx.getDispatcher();
      response = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(dispatcher ? { dispatcher } : {}),
        signal: signal ?? null,
      });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      this.#sawFailure();
      throw new KubeApiError(0, `Cannot reach the Kubernetes API at ${this.server}: ${causeOf(e)}`);
    }
    this.#sawAnswer();
    if (response.status >= 400) {
      const text = await response.text().catch(() => "");
      let status: Record<string, unknown> = { code: response.status, message: text };
      try {
        status = JSON.parse(text);
      } catch { /* not a Status object */ }
      throw statusError({ code: response.status, ...status });
    }
    return response;
  }
}

/** Resolves like `p`, or rejects with the signal's reason as soon as it aborts. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function causeOf(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? cause.message : e.message;
  }
  return String(e);
}

/** Maps a metav1.Status to a typed error. */
export function statusError(status: Record<string, unknown>): Error {
  const code = Number(status.code ?? 0);
  const message = String(status.message ?? `HTTP ${code}`);
  const reason = String(status.reason ?? "");
  switch (code) {
    case 404:
      return new NotFoundError(message);
    case 409:
      return reason === "AlreadyExists"
        ? new AlreadyExistsError(message)
        : new ConflictError(message);
    case 410:
      return new GoneError(message);
    case 403:
      return new ForbiddenError(message);
    default:
      return new KubeApiError(code, message);
  }
}

/** Loads a kubeconfig: explicit path, then $KUBECONFIG, ~/.kube/config, then in-cluster. */
export function loadKubeConfig(opts: {
  path?: string;
  env: { KUBECONFIG?: string; HOME?: string; KUBERNETES_SERVICE_HOST?: string };
  exists: (p: string) => boolean;
}): { kc: KubeConfig; source: string } {
  if (opts.path) {
    if (!opts.exists(opts.path)) {
      throw new Error(
        `Cannot read the kubeconfig ${opts.path} given with --kubeconfig: no such file ` +
          "(pass the path of a kubeconfig file, or leave --kubeconfig out to use $KUBECONFIG, " +
          "~/.kube/config or the in-cluster service account)",
      );
    }
    return { kc: fromFile(opts.path, "given with --kubeconfig"), source: opts.path };
  }
  const envPaths = (opts.env.KUBECONFIG ?? "").split(":").filter(Boolean);
  const existing = envPaths.filter(opts.exists);
  if (existing.length) {
    return {
      kc: fromFile(existing[0]!, "named by $KUBECONFIG"),
      source: `$KUBECONFIG (${existing[0]})`,
    };
  }
  const home = opts.env.HOME ? `${opts.env.HOME}/.kube/config` : undefined;
  if (home && opts.exists(home)) return { kc: fromFile(home, "in your home"), source: home };
  if (opts.env.KUBERNETES_SERVICE_HOST) {
    const kc = new KubeConfig();
    kc.loadFromCluster();
    return { kc, source: "in-cluster service account" };
  }
  throw new Error(
    "Cannot find a Kubernetes configuration: pass --kubeconfig, set $KUBECONFIG, create ~/.kube/config, or run inside a cluster",
  );
}

// A file that is not a kubeconfig, or one without a current cluster, is a mistake to report at
// once: retrying the connection cannot fix it.
function fromFile(path: string, how: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new Error(`Cannot read the kubeconfig ${path} ${how}: ${why}`);
  }
  if (!kc.getCurrentCluster()) {
    throw new Error(
      `Cannot use the kubeconfig ${path} ${how}: it has no current context with a cluster ` +
        "(is it a kubeconfig? set current-context, or pass another file)",
    );
  }
  return kc;
}
