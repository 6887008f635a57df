/**
 * What a {@linkcode GroupMember} remembers of its past views for status
 * pages and metrics: totals of the reliable multicast across views, flush
 * durations and the latest state transfers. Bounded: a fixed number of
 * transfers is kept.
 *
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import type { ReliableStats } from "./reliable.ts";
import type { MemberId } from "./types.ts";

/** How many state transfers a member remembers. */
export const STATE_TRANSFERS_KEPT = 8;

/** One finished state transfer, as {@linkcode GroupMemberStatus.stateTransfers} lists it. */
export interface StateTransferRecord {
  /** The view the checkpoint was taken at. */
  readonly viewId: number;
  /** `"sent"`: this member streamed it; `"received"`: this member restored it. */
  readonly direction: "sent" | "received";
  /** The members it went to (sent), or the one it came from (received). */
  readonly peers: readonly MemberId[];
  /** The checkpoint's size. */
  readonly bytes: number;
  /** From the view's install to the last chunk acknowledged (sent) or the state restored (received), in ms. */
  readonly ms: number;
}

/** Reliable-multicast counters summed over every view a member was in. */
export interface ReliableTotals {
  /** Messages this member multicast. */
  sent: number;
  /** Own messages sent again (NAK answers and tail resends). */
  retransmitted: number;
}

/** The bookkeeping behind a member's history (see the module documentation). */
export class MemberHistory {
  readonly #logger: Logger;
  #past: ReliableTotals = { sent: 0, retransmitted: 0 };
  #flushes = 0;
  #lastFlushMs: number | null = null;
  #transfers: StateTransferRecord[] = [];

  /** `logger` gets the member's lines (tagged with the member by `withFields`). */
  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Adds the counters of a view's reliable multicast that ends. */
  endView(stats: ReliableStats): void {
    this.#past = addTotals(this.#past, stats);
  }

  /** The totals so far, the current view's `current` counters included. */
  totals(current: ReliableStats | undefined): ReliableTotals {
    return current === undefined ? { ...this.#past } : addTotals(
      this.#past,
      current,
    );
  }

  /** A view was installed; `flushMs` is how long its flush took (none for a first view). */
  viewInstalled(
    viewId: number,
    members: readonly MemberId[],
    joined: readonly MemberId[],
    flushMs: number | undefined,
  ): void {
    if (flushMs !== undefined) {
      this.#flushes++;
      this.#lastFlushMs = roundMs(flushMs);
    }
    this.#logger.log("info", "group.view_installed", {
      viewId,
      members,
      joined,
      flushMs: flushMs === undefined ? null : roundMs(flushMs),
    });
  }

  /** This member asked the Oracle to force `suspect` out (once per view). */
  suspected(suspect: MemberId, reason: string, viewId: number): void {
    this.#logger.log("warn", "group.suspect", {
      suspect,
      reason,
      viewId,
    });
  }

  /** This member flushed for `proposal` and told the Oracle (once per flush). */
  flushed(proposal: number, ms: number): void {
    this.#logger.log("info", "group.flushed", {
      proposal,
      ms: roundMs(ms),
    });
  }

  /** A state transfer finished. */
  transferred(record: StateTransferRecord): void {
    record = { ...record, ms: roundMs(record.ms) };
    this.#transfers.push(record);
    if (this.#transfers.length > STATE_TRANSFERS_KEPT) this.#transfers.shift();
    this.#logger.log("info", `group.state_${record.direction}`, {
      ...record,
    });
  }

  /** Flushes finished (views installed after a flush). */
  get flushes(): number {
    return this.#flushes;
  }

  /** How long the last flush took, from its proposal to the new view, or `null`. */
  get lastFlushMs(): number | null {
    return this.#lastFlushMs;
  }

  /** The latest state transfers, oldest first. */
  get stateTransfers(): readonly StateTransferRecord[] {
    return [...this.#transfers];
  }
}

function addTotals(past: ReliableTotals, stats: ReliableStats): ReliableTotals {
  return {
    sent: past.sent + stats.sent,
    retransmitted: past.retransmitted + stats.retransmitted,
  };
}

/** Milliseconds to the microsecond. */
function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
