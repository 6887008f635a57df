/**
 * The primary-partition check of a member: whether its Oracle answers.
 *
 * Views come only from the Oracle's replicated log, so a member cut off
 * from a majority of the Oracle installs no new view and can never form a
 * second group. This watch makes it say so. The Oracle client sends a
 * keep-alive every quarter of its session's TTL, and only a leader in
 * touch with a majority answers (a leader that loses its quorum steps
 * down): when no request was answered for `timeoutMs`, the member is
 * outside the primary partition; once answers resume, it is back.
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";

/** Options of a {@linkcode PrimaryWatch}. */
export interface PrimaryWatchOptions {
  /** Timers and time. */
  readonly clock: Clock;
  /** A count that grows with every answer of the Oracle (its client's `replies`). */
  answered(): number;
  /** How long without an answer means no majority, in ms. */
  readonly timeoutMs: number;
  /** The member left (`false`) or rejoined (`true`) the primary partition. */
  changed(primary: boolean): void;
}

/** Watches whether the Oracle answers (see the module documentation). */
export class PrimaryWatch {
  readonly #options: PrimaryWatchOptions;
  #primary = true;
  #answered: number;
  #lastAnswerAt: number;
  #timer: TimerId | undefined;

  /** Starts watching; the member counts as in the primary partition until `timeoutMs` passes without an answer. */
  constructor(options: PrimaryWatchOptions) {
    if (!(options.timeoutMs > 0)) {
      throw new RangeError(
        `Invalid timeoutMs ${options.timeoutMs}: use a positive number of ms`,
      );
    }
    this.#options = options;
    this.#answered = options.answered();
    this.#lastAnswerAt = options.clock.now();
    this.#schedule();
  }

  /** Whether the Oracle answered within the last `timeoutMs`. */
  get primary(): boolean {
    return this.#primary;
  }

  /** Stops the timer. */
  close(): void {
    if (this.#timer !== undefined) this.#options.clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    this.#timer = this.#options.clock.setTimer(
      this.#options.timeoutMs / 4,
      () => {
        this.#check();
        this.#schedule();
      },
    );
  }

  #check(): void {
    const { clock, answered, timeoutMs, changed } = this.#options;
    const count = answered();
    if (count !== this.#answered) {
      this.#answered = count;
      this.#lastAnswerAt = clock.now();
      if (!this.#primary) {
        this.#primary = true;
        changed(true);
      }
    } else if (this.#primary && clock.now() - this.#lastAnswerAt >= timeoutMs) {
      this.#primary = false;
      changed(false);
    }
  }
}
