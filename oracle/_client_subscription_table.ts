/**
 * The Oracle client's live subscriptions: their ids, the `ev` and `subend`
 * frames of the target for them, and their end (closed by the client or
 * ended by the Oracle).
 *
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import type { PeerId } from "../transport/transport.ts";
import type { ChannelEvent, OracleErrorResult } from "./commands.ts";
import type {
  OracleClientErrorCode,
  OracleClientStats,
  OracleError,
  OracleErrorOptions,
  Subscription,
} from "./client.ts";
import type { Outbox } from "./_client_outbox.ts";
import {
  ClientSubscription,
  type SubEntry,
  SubscriptionState,
} from "./_client_subscription.ts";

/** What the subscription table needs from the client. */
export interface SubscriptionHost {
  /** The client's counters. */
  readonly stats: OracleClientStats;
  readonly log: Logger;
  /** Where `sub`, `suback` and `unsub` frames go. */
  readonly outbox: Outbox;
  /** Whether the client is closed or expired. */
  stopped(): boolean;
  /** The replica frames go to (and are accepted from). */
  target(): PeerId;
  /** The client's clock. */
  now(): number;
  /** A `not_leader` end from the target. */
  notLeader(error: OracleErrorResult): void;
  /** Builds the error a subscription ends with. */
  error(
    code: OracleClientErrorCode,
    message: string,
    options: OracleErrorOptions,
  ): OracleError;
  /** Counts and logs an exception thrown by a callback. */
  callbackFailed(which: string, error: unknown, subscription?: number): void;
}

/** The live subscriptions, by id. */
export class SubscriptionTable {
  readonly #host: SubscriptionHost;
  #nextId = 1;
  readonly #entries = new Map<number, SubEntry>();

  constructor(host: SubscriptionHost) {
    this.#host = host;
  }

  /** Live subscriptions. */
  get size(): number {
    return this.#entries.size;
  }

  /** The live subscriptions' ids (live). */
  ids(): IterableIterator<number> {
    return this.#entries.keys();
  }

  /** The live subscriptions (live). */
  entries(): IterableIterator<SubEntry> {
    return this.#entries.values();
  }

  /** A copy of the live subscriptions. */
  snapshot(): SubEntry[] {
    return [...this.#entries.values()];
  }

  /** Starts a subscription: sends `sub` to the target; returns its handle. */
  add(
    path: string,
    prefix: boolean,
    from: number,
    onEvents: (events: readonly ChannelEvent[]) => void,
    onError: ((error: OracleError) => void) | undefined,
  ): Subscription {
    const state = new SubscriptionState(this.#nextId++, path, prefix, from);
    state.heardAt = this.#host.now();
    this.#entries.set(state.id, { state, onEvents, onError });
    this.#host.outbox.put({ k: "sub", sub: state });
    return new ClientSubscription(state, () => this.close(state));
  }

  /**
   * Subscribes again, from the next position, every subscription the
   * target sent nothing for in `idleMs`: a `sub` frame, or the last
   * events of a channel that went quiet, may have been lost, and nothing
   * else would notice. The target then sends what the client lacks, or
   * nothing if it lacks nothing.
   */
  refresh(idleMs: number): void {
    if (this.#host.stopped()) return;
    const now = this.#host.now();
    for (const { state } of this.#entries.values()) {
      if (now - state.heardAt < idleMs) continue;
      state.heardAt = now;
      this.#host.stats.subscriptionRefreshes++;
      this.#host.outbox.put({ k: "sub", sub: state });
    }
  }

  /** An `ev` frame for subscription `id`. */
  onEvents(
    from: PeerId,
    id: number,
    events: readonly ChannelEvent[],
  ): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) {
      this.#host.stats.staleEvents++;
      if (id < this.#nextId) {
        this.#host.outbox.sendAside(from, { t: "unsub", id });
      }
      return;
    }
    if (from !== this.#host.target()) {
      this.#host.stats.staleEvents++;
      return;
    }
    const state = entry.state;
    state.heardAt = this.#host.now();
    const outcome = state.accept(events);
    this.#host.stats.duplicateEvents += outcome.duplicates;
    if (outcome.deliver.length > 0) {
      this.#host.stats.eventsDelivered += outcome.deliver.length;
      try {
        entry.onEvents(outcome.deliver);
      } catch (error) {
        this.#host.callbackFailed("onEvents", error, state.id);
      }
    }
    if (state.closed || this.#entries.get(id) !== entry) return;
    if (this.#host.stopped()) return;
    if (outcome.gap) {
      this.#host.stats.gaps++;
      this.#host.stats.resubscribes++;
      this.#host.log.log("warn", "oracle_client_gap", {
        from,
        subscription: id,
        next: state.next,
      });
      this.#host.outbox.put({ k: "sub", sub: state });
    } else {
      this.#host.outbox.put({ k: "suback", id, upTo: state.next - 1 });
    }
  }

  /** A `subend` frame: the Oracle ended subscription `id`. */
  onEnd(
    from: PeerId,
    id: number,
    err: OracleErrorResult,
  ): void {
    const entry = this.#entries.get(id);
    if (entry === undefined || from !== this.#host.target()) {
      this.#host.stats.staleEvents++;
      return;
    }
    const state = entry.state;
    if (err.code === "not_leader") {
      this.#host.notLeader(err);
      return;
    }
    if (
      err.code === "compacted" && err.first !== undefined &&
      err.first <= state.next
    ) {
      // Ends an older instance of this subscription: next is still there.
      this.#host.stats.resubscribes++;
      this.#host.outbox.put({ k: "sub", sub: state });
      return;
    }
    const what = state.prefix
      ? `follow prefix ${
        JSON.stringify(state.path)
      } from revision ${state.next}`
      : `follow ${JSON.stringify(state.path)} from ${state.next}`;
    this.end(
      entry,
      this.#host.error(
        err.code,
        `Cannot ${what}: ${err.message || err.code}`,
        { leader: err.leader, first: err.first, delegation: err.delegation },
      ),
    );
  }

  /** Ends a subscription on the Oracle's side: `onError` gets `error`. */
  end(entry: SubEntry, error: OracleError): void {
    const state = entry.state;
    if (state.closed) return;
    state.closed = true;
    this.#entries.delete(state.id);
    this.#host.outbox.forgetSuback(state.id);
    if (entry.onError !== undefined) {
      try {
        entry.onError(error);
      } catch (cause) {
        this.#host.callbackFailed("onError", cause, state.id);
      }
    }
  }

  /** Closes a subscription on the client's side (`unsub`). */
  close(state: SubscriptionState): void {
    if (state.closed) return;
    state.closed = true;
    this.#entries.delete(state.id);
    this.#host.outbox.forgetSuback(state.id);
    this.#host.outbox.put({ k: "unsub", id: state.id });
  }
}
