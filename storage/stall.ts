/**
 * Stall detection for any {@link ObjectStore}: a storage that accepts a connection and then
 * stops answering (a dropped route, a wedged server, a full accept queue) otherwise holds a
 * backup, and its slot, until the SDK's own socket timeout (minutes, per SDK, per retry).
 *
 * The rule is the same for every backend, because it looks only at the stream and the call:
 * the storage stalls when it owes the next step for `timeoutMs`. During a put it owes the
 * next step while bytes are on offer and it does not take them, and after the last byte until
 * the put returns; while it waits for the producer (pg_dump is slow) it owes nothing. Every
 * other call owes its answer from its start; a download owes each chunk the reader asked for.
 *
 * {@link StallWatch} is the pure bookkeeping; {@link StallTimer} arms the clock from it.
 */
import type { Clock } from "../lib/clock.ts";

/** When a storage owes the next step, and whether it stalled. Pure: time is passed in. */
export class StallWatch {
  #owedSince: number | undefined;
  constructor(readonly timeoutMs: number) {}

  /** From `now` the storage owes the next step (bytes were offered, or a call was made). */
  owe(now: number): void {
    this.#owedSince = now;
  }

  /** The storage owes nothing: it waits for us (it asked for bytes we do not have yet). */
  settle(): void {
    this.#owedSince = undefined;
  }

  /** When the storage stalls if nothing changes; undefined while it owes nothing. */
  deadline(): number | undefined {
    return this.#owedSince === undefined ? undefined : this.#owedSince + this.timeoutMs;
  }

  /** Whether the storage has owed the same step for the whole timeout at `now`. */
  stalled(now: number): boolean {
    const d = this.deadline();
    return d !== undefined && now >= d;
  }
}

/**
 * Calls `onStall` once, when `watch` says the storage stalled. The timer is armed at the
 * watch's deadline and re-armed when the deadline moved meanwhile; call {@link poke} after
 * each {@link StallWatch.owe}, so a watch that owed nothing when the timer last fired is armed
 * again.
 */
export class StallTimer {
  #cancel: (() => void) | undefined;
  #done = false;
  constructor(
    private readonly clock: Clock,
    private readonly watch: StallWatch,
    private readonly onStall: () => void,
  ) {
    this.poke();
  }

  /** Arms the timer if the storage owes a step and no timer is armed. */
  poke(): void {
    if (this.#done || this.#cancel) return;
    const deadline = this.watch.deadline();
    if (deadline === undefined) return;
    this.#cancel = this.clock.setTimer(Math.max(0, deadline - this.clock.now()), () => {
      this.#cancel = undefined;
      if (this.#done) return;
      if (this.watch.stalled(this.clock.now())) {
        this.#done = true;
        this.onStall();
        return;
      }
      this.poke();
    });
  }

  /** Disarms the timer for good (the call ended). */
  stop(): void {
    this.#done = true;
    this.#cancel?.();
    this.#cancel = undefined;
  }
}
