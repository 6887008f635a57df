/**
 * Ordering strategies: what a member does between the reliable, FIFO
 * multicast of a view and the application. Each multicast names its
 * strategy; each strategy stamps the messages it sends with a header
 * and decides when a message that arrived may be delivered.
 *
 * A strategy is one object per member and view, behind one interface
 * ({@linkcode OrderingStrategy}), made by a {@linkcode StrategyFactory}
 * registered by its wire code: adding one is a new file and an entry in
 * the table the member is given, not an edit of the engine.
 *
 * @module
 */

import type { GroupView, MemberId } from "./types.ts";

/** A message of one strategy, as the reliable multicast delivered it (FIFO per sender). */
export interface OrderedMessage {
  /** The member that multicast it. */
  readonly sender: MemberId;
  /** Its sequence number among the sender's messages in the view (all strategies). */
  readonly seq: number;
  /** The strategy's header, as its sender stamped it. */
  readonly header: Uint8Array;
  /** The application's bytes. */
  readonly payload: Uint8Array;
}

/** One strategy of one member in one view. */
export interface OrderingStrategy {
  /**
   * The header for a message this member multicasts now (called in send
   * order, before the message goes out).
   */
  stamp(): Uint8Array;
  /**
   * A message of this strategy arrived (own messages included). Each
   * sender's messages arrive in the order it sent them (the reliable
   * multicast is FIFO). Returns the messages it makes deliverable, in
   * delivery order (possibly none, possibly earlier held ones).
   */
  arrive(message: OrderedMessage): OrderedMessage[];
  /**
   * The view ends: the Oracle installs the next one, so every survivor
   * received exactly the same messages of this view (up to the last flush
   * target). Returns, in delivery order, the held messages to deliver
   * before the next view; the result must depend on the messages held
   * only, so that every survivor delivers the same. The rest are dropped.
   */
  drain(): OrderedMessage[];
  /** Messages held, waiting for others. */
  readonly held: number;
}

/** Makes a strategy for one member in one view. */
export interface StrategyFactory {
  /** The strategy's name, as the application names it. */
  readonly name: string;
  /** Its byte on the wire (1-255, unique among the strategies in use). */
  readonly code: number;
  /**
   * A new instance for `me` in `view`. `emit` multicasts a control
   * message of this strategy (a header, no payload) to the view, through
   * the same reliable, flushed path as every message (for example a
   * sequencer's ordering decisions); it arrives back here too. `defer`
   * runs a callback once the current turn's work is done (to gather a
   * turn's decisions into one control message).
   */
  create(
    view: GroupView,
    me: MemberId,
    emit: (header: Uint8Array) => void,
    defer: (callback: () => void) => void,
  ): OrderingStrategy;
}
