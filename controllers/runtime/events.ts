/**
 * Kubernetes Events for transitions. Repeats of the same event on the same object within ten
 * minutes update one Event's count instead of creating new ones, and each object has a token
 * bucket (burst 25, one token per five minutes, as client-go's spam filter) so a failing object
 * cannot flood the API. Emitting never throws: events are best effort.
 */
import type { KubeObject } from "./types.ts";
import type { Clock } from "../../lib/clock.ts";
import { EventResource, type KubeClient, MERGE_PATCH } from "./kube.ts";
import type { Logger } from "../../lib/log.ts";
import { kubeTime } from "../../lib/time.ts";

export type EventType = "Normal" | "Warning";

export interface EventRecorder {
  emit(obj: KubeObject<unknown, unknown>, type: EventType, reason: string, message: string): void;
}

export const nullRecorder: EventRecorder = { emit() {} };

interface Seen {
  name: string;
  namespace: string;
  count: number;
  first: string;
  lastAt: number;
}

export class KubeEventRecorder implements EventRecorder {
  readonly #seen = new Map<string, Seen>();
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: KubeClient,
    private readonly opts: { clock: Clock; logger: Logger; component?: string; host?: string },
  ) {}

  emit(obj: KubeObject<unknown, unknown>, type: EventType, reason: string, message: string): void {
    const uid = obj.metadata.uid ?? obj.metadata.name;
    if (!this.#take(uid)) return;
    // Serialised so counts stay monotonic; errors are logged, never thrown to reconcilers.
    this.#chain = this.#chain
      .then(() => this.#write(obj, type, reason, message))
      .catch((e) => this.opts.logger.debug("Cannot record event", { reason, error: e }));
  }

  /** Resolves when every event emitted so far was written (for shutdown and tests). */
  flush(): Promise<void> {
    return this.#chain;
  }

  #take(uid: string): boolean {
    const now = this.opts.clock.now();
    const b = this.#buckets.get(uid) ?? { tokens: 25, at: now };
    b.tokens = Math.min(25, b.tokens + (now - b.at) / 300_000);
    b.at = now;
    this.#buckets.set(uid, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  async #write(
    obj: KubeObject<unknown, unknown>,
    type: EventType,
    reason: string,
    message: string,
  ) {
    const now = this.opts.clock.now();
    const ts = kubeTime(now);
    const namespace = obj.metadata.namespace ?? "default";
    const key = `${obj.metadata.uid}|${type}|${reason}|${message}`;
    const seen = this.#seen.get(key);
    if (seen && now - seen.lastAt < 600_000) {
      seen.count++;
      seen.lastAt = now;
      await this.client.patch(EventResource, {
        namespace: seen.namespace,
        name: seen.name,
        body: {
          count: seen.count,
          lastTimestamp: ts,
        },
        contentType: MERGE_PATCH,
      });
      return;
    }
    const name = `${obj.metadata.name}.${now.toString(16)}${
      Math.floor(Math.random() * 0xffff).toString(16)
    }`;
    await this.client.create(EventResource, {
      namespace,
      body: {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata.name,
          ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
          ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
          ...(obj.metadata.resourceVersion
            ? { resourceVersion: obj.metadata.resourceVersion }
            : {}),
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: {
          component: this.opts.component ?? "dbtether",
          ...(this.opts.host ? { host: this.opts.host } : {}),
        },
        reportingComponent: this.opts.component ?? "dbtether",
        reportingInstance: this.opts.host ?? "dbtether",
        firstTimestamp: ts,
        lastTimestamp: ts,
        count: 1,
      },
    });
    this.#seen.set(key, { name, namespace, count: 1, first: ts, lastAt: now });
    if (this.#seen.size > 5000) this.#seen.delete(this.#seen.keys().next().value!);
  }
}
