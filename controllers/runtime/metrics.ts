/**
 * Prometheus metrics through prom-client, in one registry the HTTP server exposes.
 * Controllers and the backup engine receive this object; nothing registers globally.
 */
import client from "prom-client";

export class Metrics {
  readonly registry = new client.Registry();
  readonly reconcileTotal = this.counter(
    "dbtether_reconcile_total",
    "Reconciles by controller and result (success, requeue, error, terminal).",
    ["controller", "result"],
  );
  readonly reconcileErrors = this.counter(
    "dbtether_reconcile_errors_total",
    "Reconciles that failed, by controller and reason.",
    ["controller", "reason"],
  );
  readonly reconcileDuration = this.histogram(
    "dbtether_reconcile_duration_seconds",
    "Time spent in one reconcile, by controller.",
    ["controller"],
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  );
  readonly queueDepth = this.gauge(
    "dbtether_workqueue_depth",
    "Keys waiting in each controller's queue.",
    ["controller"],
  );
  readonly resyncQueued = this.counter(
    "dbtether_resync_queued_total",
    "Keys re-queued by the periodic drift resync (--resync-period), by controller.",
    ["controller"],
  );
  readonly leader = this.gauge(
    "dbtether_leader",
    "1 while this instance holds the leader lease (or leader election is off).",
    [],
  );
  readonly buildInfo = this.gauge(
    "dbtether_build_info",
    "Build information; always 1.",
    ["version", "deno"],
  );
  readonly watchEvents = this.counter(
    "dbtether_informer_events_total",
    "Informer list/watch outcomes by resource and event.",
    ["resource", "event"],
  );

  /** Lets other modules (the backup engine) register their own metrics here. */
  counter<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
  ): client.Counter<L> {
    return new client.Counter({ name, help, labelNames, registers: [this.registry] });
  }
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): client.Gauge<L> {
    return new client.Gauge({ name, help, labelNames, registers: [this.registry] });
  }
  histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: number[],
  ): client.Histogram<L> {
    return new client.Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  async text(): Promise<string> {
    return await this.registry.metrics();
  }
}
