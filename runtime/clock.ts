/**
 * The clock protocol code is handed: the only way it may read time or wait.
 *
 * @module
 */

/** An opaque handle for a timer set with {@linkcode Clock.setTimer}. */
export type TimerId = number | object;

/**
 * Time as protocol code sees it. The real driver uses the system clock and
 * `setTimeout`; the simulator uses a virtual clock that only moves when its
 * scheduler advances it.
 */
export interface Clock {
  /** Milliseconds since an arbitrary, fixed origin; never goes backwards. */
  now(): number;
  /**
   * Calls `callback` once, `delayMs` milliseconds from now.
   *
   * @returns A handle for {@linkcode Clock.clearTimer}.
   */
  setTimer(delayMs: number, callback: () => void): TimerId;
  /** Cancels a timer; does nothing if it already fired or was cancelled. */
  clearTimer(id: TimerId): void;
  /**
   * Calls `callback` once the current synchronous work is done, before
   * any timer due later: work a handler leaves for right after the event
   * it handles. The real clock queues a microtask; the simulator's sets a
   * zero-delay timer, which keeps the call in virtual time.
   */
  defer(callback: () => void): void;
}

/**
 * The real clock: `performance.now()` and `setTimeout`.
 *
 * @example Read the time and set a timer
 * ```ts
 * import { SystemClock } from "@cohort/cohort";
 * import assert from "node:assert/strict";
 *
 * const clock = new SystemClock();
 * const start = clock.now();
 * await new Promise<void>((resolve) => clock.setTimer(1, resolve));
 * assert.ok(clock.now() >= start);
 * ```
 */
export class SystemClock implements Clock {
  /** Milliseconds since the process started (monotonic). */
  now(): number {
    return performance.now();
  }

  /**
   * Sets a real timer.
   *
   * @param delayMs Delay in milliseconds.
   * @param callback Called once when the delay has passed.
   * @returns The timer's handle.
   */
  setTimer(delayMs: number, callback: () => void): TimerId {
    return setTimeout(callback, Math.max(0, delayMs));
  }

  /**
   * Cancels a real timer.
   *
   * @param id The handle returned by `setTimer`.
   */
  clearTimer(id: TimerId): void {
    clearTimeout(id as number);
  }

  /**
   * Queues a microtask.
   *
   * @param callback Called once the current synchronous work is done.
   */
  defer(callback: () => void): void {
    queueMicrotask(callback);
  }
}
