/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm: a lease held
 * by someone else counts as expired only after leaseDuration has passed on *our* clock since we
 * last saw it change (no trust in other machines' clocks); updates are PUTs guarded by
 * resourceVersion; the leader renews every retryPeriod. Its {@link LeaseFence} stays open for
 * renewDeadline after the last renewal it *sent* that succeeded; every request of a renewal is
 * aborted when that time is up, and then the lease is lost for good (the process exits). On
 * shutdown it releases the lease so a successor starts at once.
 */
import type { Clock } from "../../lib/clock.ts";
import {
  AlreadyExistsError,
  ConflictError,
  errorMessage,
  NotFoundError,
} from "../../lib/errors.ts";
import { LeaseFence, type Stamp } from "../../lib/fence.ts";
import { type KubeClient, LeaseResource } from "./kube.ts";
import type { Logger } from "../../lib/log.ts";
import { kubeMicroTime } from "../../lib/time.ts";

export interface LeaderOptions {
  /** A client without a fence: the lease requests are what keeps the fence open. */
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
  /** Monotonic milliseconds for the fence (tests with a fake clock pass the same clock). */
  monotonic?: () => number;
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

/** A release re-reads after a 409 at most this many times (each 409 means a write landed). */
const RELEASE_ATTEMPTS = 3;

export class LeaderElector {
  readonly #o:
    & Required<Omit<LeaderOptions, "onLeaderChange" | "monotonic">>
    & Pick<LeaderOptions, "onLeaderChange">;
  /** Open while this replica may act as the leader; closed for good once the lease is lost. */
  readonly fence: LeaseFence;
  #observed: { record: string; at: number } | undefined;
  #leading = false;
  #lease: Lease | undefined;

  constructor(opts: LeaderOptions) {
    const { monotonic, ...rest } = opts;
    this.#o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      ...rest,
    };
    this.fence = new LeaseFence({
      clock: opts.clock,
      validForMs: this.#o.renewDeadlineMs,
      ...(monotonic ? { monotonic } : {}),
    });
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
    while (!signal.aborted && !this.fence.closed) {
      // An attempt that outlives the renew deadline would open the fence already expired.
      const attempt = AbortSignal.any([signal, AbortSignal.timeout(this.#o.renewDeadlineMs)]);
      if (await this.#tryAcquireOrRenew(attempt)) {
        this.#setLeading(true);
        logger.info("Became leader", { identity: this.#o.identity });
        return true;
      }
      await clock.sleep(this.#o.retryPeriodMs * (1 + Math.random() * 0.2), signal).catch(() => {});
    }
    return false;
  }

  /**
   * Renews until the lease is lost (resolves "lost", the fence closed) or `signal` aborts
   * (releases the lease and resolves "stopped").
   */
  async hold(signal: AbortSignal): Promise<"lost" | "stopped"> {
    const { clock, logger } = this.#o;
    const fence = this.fence;
    const stopOrLost = AbortSignal.any([signal, fence.signal]);
    while (!stopOrLost.aborted) {
      await clock.sleep(this.#o.retryPeriodMs, stopOrLost).catch(() => {});
      if (stopOrLost.aborted) break;
      // Each renewal is cut off when the fence would close: a hung request must not keep a
      // leader that cannot prove it still holds the lease.
      const left = fence.remainingMs();
      if (left > 0) {
        const attempt = AbortSignal.any([stopOrLost, AbortSignal.timeout(left)]);
        if (await this.#tryAcquireOrRenew(attempt)) continue;
      }
      if (fence.remainingMs() === 0 && !signal.aborted) {
        fence.close(`the leader lease was not renewed within ${this.#o.renewDeadlineMs} ms`);
      }
    }
    if (fence.closed) {
      this.#setLeading(false);
      logger.error("Lost the leader lease: stopped all work at once", {
        renewDeadlineMs: this.#o.renewDeadlineMs,
        reason: errorMessage(fence.signal.reason),
      });
      return "lost";
    }
    await this.release();
    return "stopped";
  }

  /**
   * Gives the lease up so another instance can take over without waiting for expiry. A renewal
   * cut off by the stop may still have landed on the server, so a 409 re-reads the lease and
   * tries again while the record still names us (never a lease someone else holds).
   */
  async release(): Promise<void> {
    if (!this.#leading || !this.#lease) return;
    // Nothing of ours may run once a successor can start.
    this.fence.close("the leader lease was released");
    const { client, namespace, name, identity, logger } = this.#o;
    const signal = AbortSignal.timeout(this.#o.renewDeadlineMs);
    let lease: Lease | undefined = this.#lease;
    try {
      for (let attempt = 0; lease && attempt < RELEASE_ATTEMPTS; attempt++) {
        try {
          await client.replace(LeaseResource, {
            namespace,
            name,
            body: {
              ...lease,
              spec: {
                ...lease.spec,
                holderIdentity: null,
                leaseDurationSeconds: 1,
                renewTime: kubeMicroTime(this.#o.clock.now()),
              },
            },
            signal,
          });
          logger.info("Released the leader lease");
          break;
        } catch (e) {
          if (!(e instanceof ConflictError)) throw e;
          const current = await client.get<Lease>(LeaseResource, { namespace, name, signal });
          lease = current.spec.holderIdentity === identity ? current : undefined;
        }
      }
    } catch (e) {
      logger.warn("Cannot release the leader lease", { error: errorMessage(e) });
    }
    this.#setLeading(false);
  }

  #setLeading(v: boolean): void {
    if (this.#leading === v) return;
    this.#leading = v;
    this.#o.onLeaderChange?.(v);
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const { client, namespace, name, identity } = this.#o;
    try {
      let lease: Lease;
      try {
        lease = await client.get<Lease>(LeaseResource, { namespace, name, signal });
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
        const sent = this.fence.stamp();
        this.#lease = await client.create<Lease>(LeaseResource, {
          namespace,
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name, namespace },
            spec: this.#desired(sent, 0),
          },
          signal,
        });
        return this.#won(sent);
      }
      const seenAt = this.#o.clock.now();
      const record = JSON.stringify(lease.spec);
      if (!this.#observed || this.#observed.record !== record) {
        this.#observed = { record, at: seenAt };
      }
      const holder = lease.spec.holderIdentity ?? "";
      const duration = (lease.spec.leaseDurationSeconds ?? 15) * 1000;
      if (holder && holder !== identity) {
        if (this.#leading) {
          // Someone took the lease while we believed we held it: stop before anything else.
          this.fence.close(`replica ${JSON.stringify(holder)} holds the leader lease`);
          return false;
        }
        if (this.#observed.at + duration > seenAt) return false;
      }
      const sent = this.fence.stamp();
      const spec: LeaseSpec = holder === identity
        ? {
          ...lease.spec,
          renewTime: kubeMicroTime(sent.wall),
          leaseDurationSeconds: Math.ceil(this.#o.leaseDurationMs / 1000),
        }
        : this.#desired(sent, (lease.spec.leaseTransitions ?? 0) + (holder ? 1 : 0));
      this.#lease = await client.replace<Lease>(LeaseResource, {
        namespace,
        name,
        body: {
          ...lease,
          spec,
        },
        signal,
      });
      return this.#won(sent);
    } catch (e) {
      if (!(e instanceof ConflictError || e instanceof AlreadyExistsError)) {
        this.#o.logger.warn("Cannot acquire or renew the leader lease", { error: errorMessage(e) });
      }
      return false;
    }
  }

  #desired(sent: Stamp, transitions: number): LeaseSpec {
    return {
      holderIdentity: this.#o.identity,
      leaseDurationSeconds: Math.ceil(this.#o.leaseDurationMs / 1000),
      acquireTime: kubeMicroTime(sent.wall),
      renewTime: kubeMicroTime(sent.wall),
      leaseTransitions: transitions,
    };
  }

  // The write landed: the record is ours, and the fence is open from when it was sent.
  #won(sent: Stamp): boolean {
    this.#observed = { record: JSON.stringify(this.#lease!.spec), at: this.#o.clock.now() };
    this.fence.renewed(sent);
    return true;
  }
}
