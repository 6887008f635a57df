/**
 * The leader's subscription table: which client wants which channel (or
 * prefix) from which position, and how many events each has in flight.
 *
 * A subscription is "live" while it has sent everything retained and has
 * room in its window: new events go straight out as they are applied. A
 * lagging one (window full, or resuming from an old position) is refilled
 * from the state machine's retained events when the client acknowledges.
 *
 * @module
 */

import type { ChannelEvent, OracleErrorResult } from "./commands.ts";
import type { PeerId } from "../transport/transport.ts";
import type { OracleStateMachine } from "./state_machine.ts";

/** The retained events the table reads when a subscription lags. */
export type EventSource = Pick<
  OracleStateMachine,
  "eventsFrom" | "eventsUnder"
>;

/** Where the table sends what it produces. */
export interface SubscriptionSink {
  events(client: PeerId, id: number, events: ChannelEvent[]): void;
  end(client: PeerId, id: number, error: OracleErrorResult): void;
}

interface Sub {
  readonly client: PeerId;
  readonly id: number;
  readonly path: string;
  readonly prefix: boolean;
  /** Next position to send (seq, or rev for prefix subscriptions). */
  next: number;
  /** Positions sent and not yet acknowledged, oldest first, from `head`. */
  sent: number[];
  head: number;
  /** Sent everything retained so far: new events may go straight out. */
  live: boolean;
  /** Events collected for this sub during the current apply batch. */
  outbox: ChannelEvent[];
}

/** Limits of the subscription table. */
export interface SubscriptionLimits {
  /** Events in flight per subscription before it waits for an ack. */
  window: number;
  /** Events per frame. */
  eventsPerFrame: number;
  /** Subscriptions per client. */
  perClient: number;
}

/** The subscriptions one leader serves. */
export class SubscriptionTable {
  /** Every subscription, by client, then by the client's id for it. */
  readonly #byClient = new Map<PeerId, Map<number, Sub>>();
  readonly #byPath = new Map<string, Set<Sub>>();
  readonly #byPrefix = new Map<string, Set<Sub>>();
  readonly #dirty = new Set<Sub>();
  readonly #limits: SubscriptionLimits;
  readonly #sink: SubscriptionSink;

  constructor(sink: SubscriptionSink, limits: SubscriptionLimits) {
    this.#sink = sink;
    this.#limits = limits;
  }

  /** Number of subscriptions. */
  get size(): number {
    let size = 0;
    for (const mine of this.#byClient.values()) size += mine.size;
    return size;
  }

  /**
   * Adds or replaces (same client and id) a subscription and sends what is
   * retained from `from`.
   */
  subscribe(
    source: EventSource,
    client: PeerId,
    id: number,
    path: string,
    prefix: boolean,
    from: number,
  ): void {
    let mine = this.#byClient.get(client);
    const old = mine?.get(id);
    if (old !== undefined) this.#remove(old);
    const count = mine?.size ?? 0;
    if (count >= this.#limits.perClient) {
      this.#sink.end(client, id, {
        code: "overloaded",
        message:
          `Cannot subscribe: client ${client} has ${count} subscriptions, the limit`,
      });
      return;
    }
    const sub: Sub = {
      client,
      id,
      path,
      prefix,
      next: from,
      sent: [],
      head: 0,
      live: false,
      outbox: [],
    };
    // `#remove` drops a client's map once it is empty.
    mine = this.#byClient.get(client);
    if (mine === undefined) this.#byClient.set(client, mine = new Map());
    mine.set(id, sub);
    const index = prefix ? this.#byPrefix : this.#byPath;
    let set = index.get(path);
    if (set === undefined) index.set(path, set = new Set());
    set.add(sub);
    this.#refill(source, sub);
  }

  /** Removes one subscription. */
  unsubscribe(client: PeerId, id: number): void {
    const sub = this.#byClient.get(client)?.get(id);
    if (sub !== undefined) this.#remove(sub);
  }

  /** The client processed events up to `upTo`: room in its window. */
  ack(source: EventSource, client: PeerId, id: number, upTo: number): void {
    const sub = this.#byClient.get(client)?.get(id);
    if (sub === undefined) return;
    while (sub.head < sub.sent.length && sub.sent[sub.head] <= upTo) sub.head++;
    if (sub.head >= 256) {
      sub.sent = sub.sent.slice(sub.head);
      sub.head = 0;
    }
    if (!sub.live) this.#refill(source, sub);
  }

  /** Drops every subscription of a client (it disconnected). */
  dropClient(client: PeerId): void {
    const mine = this.#byClient.get(client);
    if (mine === undefined) return;
    for (const sub of [...mine.values()]) this.#remove(sub);
  }

  /** Ends every subscription with `error` (for example: no longer leader). */
  endAll(error: OracleErrorResult): void {
    for (const mine of [...this.#byClient.values()]) {
      for (const sub of [...mine.values()]) {
        this.#remove(sub);
        this.#sink.end(sub.client, sub.id, error);
      }
    }
  }

  /**
   * Ends every subscription (to a channel or a prefix) for which `reason`
   * returns an error given its path, with that error (for example `moved`, once its path was delegated). A scan of
   * every subscription: only a delegation asks.
   */
  endWhere(
    reason: (path: string) => OracleErrorResult | undefined,
  ): void {
    for (const mine of [...this.#byClient.values()]) {
      for (const sub of [...mine.values()]) {
        const error = reason(sub.path);
        if (error === undefined) continue;
        this.#remove(sub);
        this.#sink.end(sub.client, sub.id, error);
      }
    }
  }

  /** Offers one newly applied event to every matching subscription. */
  offer(event: ChannelEvent): void {
    const exact = this.#byPath.get(event.path);
    if (exact !== undefined) {
      for (const sub of exact) this.#take(sub, event, event.seq);
    }
    if (this.#byPrefix.size === 0) return;
    let at = event.path;
    for (;;) {
      const set = this.#byPrefix.get(at);
      if (set !== undefined) {
        for (const sub of set) this.#take(sub, event, event.rev);
      }
      if (at === "/") break;
      const cut = at.lastIndexOf("/");
      at = cut === 0 ? "/" : at.slice(0, cut);
    }
  }

  /** Sends what `offer` collected, and refills lagging subscriptions. */
  flush(source: EventSource): void {
    for (const sub of this.#dirty) {
      if (sub.outbox.length > 0) {
        const events = sub.outbox;
        sub.outbox = [];
        this.#sink.events(sub.client, sub.id, events);
      }
      if (!sub.live && this.#byClient.get(sub.client)?.get(sub.id) === sub) {
        this.#refill(source, sub);
      }
    }
    this.#dirty.clear();
  }

  #take(sub: Sub, event: ChannelEvent, position: number): void {
    if (position < sub.next) return;
    if (!sub.live || inflight(sub) >= this.#limits.window) {
      sub.live = false;
      this.#dirty.add(sub);
      return;
    }
    if (!sub.prefix && position !== sub.next) {
      // A gap can only mean this table missed an event: resynchronize.
      sub.live = false;
      this.#dirty.add(sub);
      return;
    }
    sub.outbox.push(event);
    sub.next = position + 1;
    sub.sent.push(position);
    if (sub.outbox.length >= this.#limits.eventsPerFrame) {
      const events = sub.outbox;
      sub.outbox = [];
      this.#sink.events(sub.client, sub.id, events);
    }
    this.#dirty.add(sub);
  }

  #refill(source: EventSource, sub: Sub): void {
    for (let frames = 0; frames < 64; frames++) {
      const room = this.#limits.window - inflight(sub);
      if (room <= 0) return;
      const limit = Math.min(room, this.#limits.eventsPerFrame);
      const got = sub.prefix
        ? source.eventsUnder(sub.path, sub.next, limit)
        : source.eventsFrom(sub.path, sub.next, limit);
      if ("compacted" in got) {
        this.#remove(sub);
        this.#sink.end(sub.client, sub.id, {
          code: "compacted",
          message: `Cannot resume ${
            sub.prefix ? "prefix " : ""
          }subscription to "${sub.path}" at ${sub.next}: compacted, first available is ${got.compacted}`,
          first: got.compacted,
        });
        return;
      }
      if (got.events.length === 0) {
        sub.next = Math.max(sub.next, got.next);
        sub.live = true;
        return;
      }
      sub.next = got.next;
      for (const event of got.events) {
        sub.sent.push(sub.prefix ? event.rev : event.seq);
      }
      this.#sink.events(sub.client, sub.id, got.events);
      if (got.events.length < limit) {
        sub.live = true;
        return;
      }
    }
  }

  #remove(sub: Sub): void {
    const mine = this.#byClient.get(sub.client);
    if (mine?.get(sub.id) !== sub) return;
    mine.delete(sub.id);
    if (mine.size === 0) this.#byClient.delete(sub.client);
    this.#dirty.delete(sub);
    const index = sub.prefix ? this.#byPrefix : this.#byPath;
    const set = index.get(sub.path);
    set?.delete(sub);
    if (set?.size === 0) index.delete(sub.path);
  }
}

function inflight(sub: Sub): number {
  return sub.sent.length - sub.head;
}
