/**
 * The client-side state of one Oracle subscription: its position and the
 * rule that turns a stream of events, which may repeat after a resume,
 * into exactly-once, in-order delivery; and the handle the client returns
 * for it.
 *
 * @module
 */

import type { ChannelEvent } from "./commands.ts";
import type { OracleError, Subscription } from "./client.ts";

/** What {@linkcode SubscriptionState.accept} found in one `ev` frame. */
export interface AcceptOutcome {
  /** Events to deliver, in order (positions from the old `next`, without repeats). */
  readonly deliver: ChannelEvent[];
  /** Events dropped because their position was below `next` (already delivered). */
  readonly duplicates: number;
  /**
   * A path subscription saw a position above `next` (or an event of another
   * path): the rest of the frame was dropped; resubscribe from `next`.
   */
  readonly gap: boolean;
}

/** One subscription as the client tracks it. */
export class SubscriptionState {
  readonly id: number;
  readonly path: string;
  readonly prefix: boolean;
  /** The next position wanted: a sequence number, or a revision for a prefix subscription. */
  next: number;
  closed = false;
  /** When the target last sent a frame for it, or it was last (re)sent. */
  heardAt = 0;

  constructor(id: number, path: string, prefix: boolean, from: number) {
    this.id = id;
    this.path = path;
    this.prefix = prefix;
    this.next = from;
  }

  /**
   * Applies the events of one `ev` frame to the position.
   *
   * A path subscription accepts exactly `next` and moves to `next + 1`;
   * a prefix subscription accepts any revision at or above `next` (the
   * revisions of a prefix are increasing but not contiguous) and moves to
   * `rev + 1`. Lower positions are repeats of what was delivered.
   */
  accept(events: readonly ChannelEvent[]): AcceptOutcome {
    const deliver: ChannelEvent[] = [];
    let duplicates = 0;
    let gap = false;
    for (const event of events) {
      const position = this.prefix ? event.rev : event.seq;
      if (!this.prefix && event.path !== this.path) {
        gap = true;
        break;
      }
      if (position < this.next) {
        duplicates++;
        continue;
      }
      if (!this.prefix && position > this.next) {
        gap = true;
        break;
      }
      deliver.push(event);
      this.next = position + 1;
    }
    return { deliver, duplicates, gap };
  }
}

/** The client's handle on one subscription. */
export class ClientSubscription implements Subscription {
  readonly #state: SubscriptionState;
  readonly #close: () => void;

  constructor(state: SubscriptionState, close: () => void) {
    this.#state = state;
    this.#close = close;
  }

  get id(): number {
    return this.#state.id;
  }

  get path(): string {
    return this.#state.path;
  }

  get prefix(): boolean {
    return this.#state.prefix;
  }

  get next(): number {
    return this.#state.next;
  }

  get closed(): boolean {
    return this.#state.closed;
  }

  close(): void {
    this.#close();
  }
}

/** A live subscription with its callbacks. */
export interface SubEntry {
  readonly state: SubscriptionState;
  readonly onEvents: (events: readonly ChannelEvent[]) => void;
  readonly onError: ((error: OracleError) => void) | undefined;
}
