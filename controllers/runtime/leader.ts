/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm: a lease held
 * by someone else counts as expired only after leaseDuration has passed on *our* clock since we
 * last saw it change (no trust in other machines' clocks); updates are PUTs guarded by
 * resourceVersion; the leader renews every retryPeriod and gives up if it could not renew
 * within renewDeadline; on shutdown it releases the lease so a successor starts at once.
 */
import type { Clock } from "./clock.ts";
import { AlreadyExistsError, ConflictError, errorMessage, NotFoundError } from "./errors.ts";
import { type KubeClient, LeaseResource } from "./kube.ts";
import type { Logger } from "./log.ts";

export interface LeaderOptions {
  client: KubeClient;
  clock: Clock;
  logger: Logger;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onLeaderChange?: (leading: boolean) => void;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}
interface Lease {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

/** Micro-time as the Lease API writes it. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace("Z", "000Z");
}

export class LeaderElector {
  readonly #o:
    & Required<Omit<LeaderOptions, "onLeaderChange">>
    & Pick<LeaderOptions, "onLeaderChange">;
  #observed: { record: string; at: number } | undefined;
  #leading = false;
  #lease: Lease | undefined;

  constructor(opts: LeaderOptions) {
    this.#o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      ...opts,
    };
  }

  get leading(): boolean {
    return this.#leading;
  }

  /**
   * Waits until this instance leads (resolves true) or `signal` aborts (resolves false).
   */
  async acquire(signal: AbortSignal): Promise<boolean> {
    const { clock, logger } = this.#o;
    logger.info("Waiting for the leader lease", { lease: `${this.#o.namespace}/${this.#o.name}` });
    while (!signal.aborted) {
      if (await this.#tryAcquireOrRenew()) {
        this.#setLeading(true);
        logger.info("Became leader", { identity: this.#o.identity });
        return true;
      }
      await clock.sleep(this.#o.retryPeriodMs * (1 + Math.random() * 0.2), signal).catch(() => {});
    }
    return false;
  }

  /**
   * Renews until the lease is lost (resolves "lost") or `signal` aborts (releases the lease and
   * resolves "stopped").
   */
  async hold(signal: AbortSignal): Promise<"lost" | "stopped"> {
    const { clock, logger } = this.#o;
    let lastRenew = clock.now();
    while (!signal.aborted) {
      await clock.sleep(this.#o.retryPeriodMs, signal).catch(() => {});
      if (signal.aborted) break;
      if (await this.#tryAcquireOrRenew()) {
        lastRenew = clock.now();
        continue;
      }
      if (clock.now() - lastRenew >= this.#o.renewDeadlineMs) {
        this.#setLeading(false);
        logger.error("Lost the leader lease: could not renew it in time", {
          renewDeadlineMs: this.#o.renewDeadlineMs,
        });
        return "lost";
      }
    }
    await this.release();
    return "stopped";
  }

  /** Gives the lease up so another instance can take over without waiting for expiry. */
  async release(): Promise<void> {
    if (!this.#leading || !this.#lease) return;
    const lease = this.#lease;
    try {
      await this.#o.client.replace(LeaseResource, this.#o.namespace, this.#o.name, {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: null,
          leaseDurationSeconds: 1,
          renewTime: microTime(this.#o.clock.now()),
        },
      });
      this.#o.logger.info("Released the leader lease");
    } catch (e) {
      this.#o.logger.warn("Cannot release the leader lease", { error: errorMessage(e) });
    }
    this.#setLeading(false);
  }

  #setLeading(v: boolean): void {
    if (this.#leading === v) return;
    this.#leading = v;
    this.#o.onLeaderChange?.(v);
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { client, clock, namespace, name, identity } = this.#o;
    const now = clock.now();
    const desired: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.#o.leaseDurationMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    try {
      let lease: Lease;
      try {
        lease = await client.get<Lease>(LeaseResource, namespace, name);
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
        this.#lease = await client.create<Lease>(LeaseResource, namespace, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name, namespace },
          spec: desired,
        });
        this.#observed = { record: JSON.stringify(this.#lease.spec), at: now };
        return true;
      }
      const record = JSON.stringify(lease.spec);
      if (!this.#observed || this.#observed.record !== record) this.#observed = { record, at: now };
      const holder = lease.spec.holderIdentity ?? "";
      const duration = (lease.spec.leaseDurationSeconds ?? 15) * 1000;
      if (holder && holder !== identity && this.#observed.at + duration > now) return false;
      const spec: LeaseSpec = holder === identity
        ? {
          ...lease.spec,
          renewTime: desired.renewTime!,
          leaseDurationSeconds: desired.leaseDurationSeconds!,
        }
        : { ...desired, leaseTransitions: (lease.spec.leaseTransitions ?? 0) + (holder ? 1 : 0) };
      this.#lease = await client.replace<Lease>(LeaseResource, namespace, name, { ...lease, spec });
      this.#observed = { record: JSON.stringify(this.#lease.spec), at: now };
      return true;
    } catch (e) {
      if (!(e instanceof ConflictError || e instanceof AlreadyExistsError)) {
        this.#o.logger.warn("Cannot acquire or renew the leader lease", { error: errorMessage(e) });
      }
      return false;
    }
  }
}
