/**
 * The leader's queue of read-index requests. A read waits for the leader's
 * first commit in its term (its read index is then the commit index), then
 * for a heartbeat round a majority acknowledges.
 *
 * @module
 */

import type { ReadState } from "./raft_types.ts";

/** Most reads a leader holds pending at once. */
export const MAX_PENDING_READS = 65_536;

interface PendingRead {
  readonly id: number;
  /** The read index, or -1 until the leader committed in its term. */
  index: number;
  /** The heartbeat round that confirms it, or 0 until one is sent. */
  round: number;
}

/** Pending reads in request order (so in round order). */
export class ReadQueue {
  #reads: PendingRead[] = [];
  #unsent = 0;

  /** How many reads are pending. */
  get size(): number {
    return this.#reads.length;
  }

  /** Whether reads with an index wait for a heartbeat round. */
  get needsRound(): boolean {
    return this.#unsent > 0;
  }

  /** Queues a read; `index` is the read index, or -1 if not yet known. */
  add(id: number, index: number): void {
    this.#reads.push({ id, index, round: 0 });
    if (index >= 0) this.#unsent++;
  }

  /** Gives every read still without one the read index `index`. */
  setIndex(index: number): void {
    for (const read of this.#reads) {
      if (read.index < 0) {
        read.index = index;
        this.#unsent++;
      }
    }
  }

  /** Assigns `round` to every read that has an index and no round yet. */
  assignRound(round: number): void {
    for (const read of this.#reads) {
      if (read.index >= 0 && read.round === 0) read.round = round;
    }
    this.#unsent = 0;
  }

  /** Removes and returns the reads whose round `confirmed` says a majority acknowledged. */
  confirm(confirmed: (round: number) => boolean): ReadState[] {
    let n = 0;
    while (
      n < this.#reads.length && this.#reads[n].round > 0 &&
      confirmed(this.#reads[n].round)
    ) n++;
    if (n === 0) return [];
    return this.#reads.splice(0, n).map(({ id, index }) => ({ id, index }));
  }

  /** Removes every read and returns their ids. */
  clear(): number[] {
    const ids = this.#reads.map((read) => read.id);
    this.#reads = [];
    this.#unsent = 0;
    return ids;
  }
}
