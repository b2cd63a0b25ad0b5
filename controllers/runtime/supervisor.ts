/**
 * Owns background tasks so none floats: each is started through `spawn`, logged if it fails,
 * and awaited by `wait` at shutdown.
 */
import type { Logger } from "../../lib/log.ts";

export class Supervisor {
  readonly #tasks = new Set<Promise<void>>();
  constructor(readonly logger: Logger) {}

  spawn(name: string, fn: () => Promise<void>): void {
    const p: Promise<void> = (async () => {
      try {
        await fn();
      } catch (e) {
        this.logger.error("Background task failed", { task: name, error: e });
      }
    })().finally(() => this.#tasks.delete(p));
    this.#tasks.add(p);
  }

  get size(): number {
    return this.#tasks.size;
  }

  /** Waits for every task, including ones spawned while waiting. */
  async wait(): Promise<void> {
    while (this.#tasks.size) await Promise.allSettled([...this.#tasks]);
  }
}
