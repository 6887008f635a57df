/**
 * Group commit: everything written while one sync is in flight is covered
 * by the next single sync, and what waits on durability is released in the
 * order it was written.
 *
 * A write nobody waits on urgently (a follower's entries in appends the
 * leader marked lazy) is synced after a short delay, or with the next
 * urgent write, whichever comes first: fewer syncs then compete for the
 * disk with the ones a commit waits for.
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";

/** Something waiting for what was written before it to be durable. */
export type AfterSync = () => void;

/** Runs the one sync the queue needs (the WAL's `sync`). */
export type SyncRunner = (done: (error?: Error) => void) => void;

/**
 * What a waiter asks of the queue: `"now"`, it wrote something a commit
 * waits on (sync at once); `"soon"`, it wrote something nobody waits on
 * urgently (sync within the lazy delay); `"order"`, it wrote nothing and
 * only keeps its place behind the waiters before it.
 */
export type SyncNeed = "now" | "soon" | "order";

interface Waiter {
  readonly after: AfterSync;
  readonly need: SyncNeed;
}

/** At most one sync in flight; waiters released in write order. */
export class SyncQueue {
  readonly #run: SyncRunner;
  readonly #onError: (error: Error) => void;
  readonly #clock: Clock;
  readonly #lazyMs: number;
  /** Waiters written before the sync in flight started. */
  #covered: Waiter[] = [];
  /** Waiters written since: the next sync covers them. */
  #waiting: Waiter[] = [];
  #inFlight = false;
  /** Releasing waiters: an `add` from one of them waits for the others. */
  #releasing = false;
  #timer: TimerId | undefined = undefined;
  #stopped = false;
  #syncs = 0;

  /**
   * @param run Runs one sync.
   * @param onError Called instead of releasing waiters when a sync fails.
   * @param clock Times the delay of `"soon"` syncs.
   * @param lazyMs How long a `"soon"` write may wait for its sync.
   */
  constructor(
    run: SyncRunner,
    onError: (error: Error) => void,
    clock: Clock,
    lazyMs: number,
  ) {
    this.#run = run;
    this.#onError = onError;
    this.#clock = clock;
    this.#lazyMs = lazyMs;
  }

  /** Syncs started so far. */
  get syncs(): number {
    return this.#syncs;
  }

  /** `true` while anything waits for durability. */
  get busy(): boolean {
    return this.#inFlight || this.#waiting.length > 0;
  }

  /** Calls `after` once everything written so far is durable. */
  add(after: AfterSync, need: SyncNeed = "now"): void {
    if (this.#stopped) return;
    this.#waiting.push({ after, need });
    if (!this.#releasing) this.#next();
  }

  /** Stops: no sync starts any more and no waiter is released. */
  stop(): void {
    this.#stopped = true;
    this.#clearTimer();
    this.#waiting = [];
  }

  /** With no sync in flight: starts one, arms the lazy timer, or releases. */
  #next(): void {
    while (!this.#inFlight && this.#waiting.length > 0) {
      let soon = false;
      for (const w of this.#waiting) {
        if (w.need === "now") {
          this.#start();
          return;
        }
        if (w.need === "soon") soon = true;
      }
      if (soon) {
        this.#timer ??= this.#clock.setTimer(this.#lazyMs, this.#onTimer);
        return;
      }
      // Nothing written since the last sync: order alone holds nobody back.
      const waiting = this.#waiting;
      this.#waiting = [];
      this.#release(waiting);
    }
  }

  #release(waiters: Waiter[]): void {
    this.#releasing = true;
    try {
      for (const w of waiters) w.after();
    } finally {
      this.#releasing = false;
    }
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (!this.#inFlight && this.#waiting.length > 0) this.#start();
  };

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  #start(): void {
    this.#clearTimer();
    this.#covered = this.#waiting;
    this.#waiting = [];
    this.#inFlight = true;
    this.#syncs++;
    this.#run((error) => {
      this.#inFlight = false;
      if (this.#stopped) return;
      if (error !== undefined) {
        this.#onError(error);
        return;
      }
      const covered = this.#covered;
      this.#covered = [];
      this.#release(covered);
      this.#next();
    });
  }
}
