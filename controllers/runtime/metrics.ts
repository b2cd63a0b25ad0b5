/**
 * Prometheus metrics through prom-client, in one registry the HTTP server exposes.
 * Controllers and the backup engine receive this object; nothing registers globally.
 */
import client from "prom-client";

export class Metrics {
  readonly registry = new client.Registry();
  readonly reconcileTotal = new client.Counter({
    name: "dbtether_reconcile_total",
    help: "Reconciles by controller and result (success, requeue, error, terminal).",
    labelNames: ["controller", "result"] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new client.Counter({
    name: "dbtether_reconcile_errors_total",
    help: "Reconciles that failed, by controller and reason.",
    labelNames: ["controller", "reason"] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new client.Histogram({
    name: "dbtether_reconcile_duration_seconds",
    help: "Time spent in one reconcile, by controller.",
    labelNames: ["controller"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly queueDepth = new client.Gauge({
    name: "dbtether_workqueue_depth",
    help: "Keys waiting in each controller's queue.",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly leader = new client.Gauge({
    name: "dbtether_leader",
    help: "1 while this instance holds the leader lease (or leader election is off).",
    registers: [this.registry],
  });
  readonly buildInfo = new client.Gauge({
    name: "dbtether_build_info",
    help: "Build information; always 1.",
    labelNames: ["version", "deno"] as const,
    registers: [this.registry],
  });
  readonly watchEvents = new client.Counter({
    name: "dbtether_informer_events_total",
    help: "Informer list/watch outcomes by resource and event.",
    labelNames: ["resource", "event"] as const,
    registers: [this.registry],
  });

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
