/**
 * The shape every controller has: a pure planner (`<kind>/plan.ts`), a {@link Reconciler}
 * that gathers the observed state, plans, executes the actions and writes status only when it
 * changed, and {@link Watches} that say which informer events map to which keys. `register.ts`
 * wires the three with {@link startController}, a few lines per kind. The models are
 * controller-runtime's `Reconciler` interface and cert-manager's controllers.
 */
import type { Controller, ReconcileContext, Result } from "./controller.ts";
import { addController, type ControllerDeps } from "./shared.ts";

/** Reconciles one key: gather → plan → execute → status. Idempotent, level-triggered. */
export interface Reconciler {
  reconcile(key: string, ctx: ReconcileContext): Promise<Result>;
}

/** Subscribes the controller to the informer events that matter, each mapped to keys. */
export type Watches = (controller: Controller) => void;

export interface StartControllerOptions {
  /** The controller's name in logs and metrics. */
  name: string;
  reconciler: Reconciler;
  watches: Watches;
  /** A lower backoff cap for controllers that must look again sooner. */
  maxBackoffMs?: number;
}

/** Registers a controller with the manager and subscribes it to its watches. */
export function startController(deps: ControllerDeps, o: StartControllerOptions): Controller {
  const controller = addController(
    deps,
    o.name,
    (key, ctx) => o.reconciler.reconcile(key, ctx),
    o.maxBackoffMs === undefined ? {} : { maxBackoffMs: o.maxBackoffMs },
  );
  o.watches(controller);
  return controller;
}
