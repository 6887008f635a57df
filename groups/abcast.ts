/**
 * `abcast`: one total order for every member, decided by a sequencer (the
 * first member of the view). The sequencer multicasts its decisions as
 * ORDER messages through the same reliable, flushed path as the data:
 * every member delivers the abcasts in the order the ORDERs give, once
 * both the data and its ORDER arrived. The sequencer's own abcasts need
 * no ORDER: they are marked as ordered where they stand in its stream of
 * messages, which every member receives in the same (FIFO) order as its
 * ORDERs, so they reach the other members in one hop instead of two.
 *
 * The sequencer's crash needs nothing more: the flush gives every
 * survivor the same data and the same ORDERs (the sequencer's ORDERs are
 * its own messages, covered by its receive vector like any other). At the
 * end of the view, each survivor delivers what was ordered, in order,
 * then what was never ordered, by sender (view order) then sequence
 * number: the same everywhere.
 *
 * Header: one byte, 0 for data (then nothing), 2 for the sequencer's own
 * data (ordered where it stands, then nothing) or 1 for an ORDER, then a
 * u16 count and that many (sender index u16, seq u32).
 *
 * @module
 */

import type {
  OrderedMessage,
  OrderingStrategy,
  StrategyFactory,
} from "./ordering.ts";
import type { GroupView, MemberId } from "./types.ts";

const DATA = 0;
const ORDER = 1;
const SELF_ORDERED = 2;
const DATA_HEADER = new Uint8Array([DATA]);
const SELF_ORDERED_HEADER = new Uint8Array([SELF_ORDERED]);
/** Most decisions in one ORDER (its header stays well inside a frame). */
const MAX_PER_ORDER = 10_000;

/** One member's total order in one view. */
class Abcast implements OrderingStrategy {
  readonly #members: readonly MemberId[];
  readonly #index: Map<MemberId, number>;
  readonly #sequencer: boolean;
  readonly #emit: (header: Uint8Array) => void;
  readonly #defer: (callback: () => void) => void;
  /** The sequencer's decisions of this turn, emitted together at its end. */
  #undecided: [number, number][] = [];
  /** Data that arrived, not yet delivered, by {@linkcode keyOf}. */
  readonly #data = new Map<number, OrderedMessage>();
  /** The decided order, as keys; `#next` is the first not yet delivered. */
  #order: number[] = [];
  #next = 0;
  /** Messages dropped because their header was malformed. */
  malformed = 0;

  constructor(
    view: GroupView,
    me: MemberId,
    emit: (header: Uint8Array) => void,
    defer: (callback: () => void) => void,
  ) {
    this.#members = view.members;
    this.#index = new Map(view.members.map((m, i) => [m, i]));
    this.#sequencer = view.members[0] === me;
    this.#emit = emit;
    this.#defer = defer;
  }

  get held(): number {
    return this.#data.size;
  }

  stamp(): Uint8Array {
    return this.#sequencer ? SELF_ORDERED_HEADER : DATA_HEADER;
  }

  arrive(message: OrderedMessage): OrderedMessage[] {
    const header = message.header;
    if (header.length === 1 && header[0] === SELF_ORDERED) {
      if (message.sender !== this.#members[0]) {
        this.malformed++;
        return [];
      }
      // Ordered here: after every ORDER the sequencer sent before it.
      const key = keyOf(0, message.seq);
      this.#data.set(key, message);
      this.#order.push(key);
      return this.#release();
    }
    if (header.length === 1 && header[0] === DATA) {
      // The reliable layer passes on messages from members of the view only.
      const sender = this.#index.get(message.sender)!;
      this.#data.set(keyOf(sender, message.seq), message);
      if (this.#sequencer) this.#decide(sender, message.seq);
      return this.#release();
    }
    const decisions = this.#decode(header, message.sender);
    if (decisions === undefined) {
      this.malformed++;
      return [];
    }
    this.#order.push(...decisions);
    return this.#release();
  }

  drain(): OrderedMessage[] {
    const out = this.#release();
    // Ordered messages whose data nobody received cannot exist (the
    // sequencer orders only what it received); what was never ordered goes
    // last, by sender in view order, then sequence number.
    const rest = [...this.#data.values()].sort((a, b) =>
      this.#index.get(a.sender)! - this.#index.get(b.sender)! || a.seq - b.seq
    );
    this.#data.clear();
    return out.concat(rest);
  }

  /** Delivers the decided messages whose data arrived, in the decided order. */
  #release(): OrderedMessage[] {
    const out: OrderedMessage[] = [];
    while (this.#next < this.#order.length) {
      const message = this.#data.get(this.#order[this.#next]);
      if (message === undefined) break;
      this.#data.delete(this.#order[this.#next]);
      this.#next++;
      out.push(message);
    }
    // Delivered keys are dropped once they are most of the list.
    if (this.#next > 1024 && this.#next * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#next);
      this.#next = 0;
    }
    return out;
  }

  /**
   * The sequencer orders messages as they arrive; the decisions of one
   * turn leave together, in one ORDER (at most 10,000 per ORDER).
   */
  #decide(sender: number, seq: number): void {
    this.#undecided.push([sender, seq]);
    if (this.#undecided.length === 1) this.#defer(() => this.#emitOrder());
    else if (this.#undecided.length >= MAX_PER_ORDER) this.#emitOrder();
  }

  #emitOrder(): void {
    const decisions = this.#undecided;
    if (decisions.length === 0) return;
    this.#undecided = [];
    const header = new Uint8Array(3 + 6 * decisions.length);
    const view = new DataView(header.buffer);
    header[0] = ORDER;
    view.setUint16(1, decisions.length);
    decisions.forEach(([sender, seq], i) => {
      view.setUint16(3 + 6 * i, sender);
      view.setUint32(5 + 6 * i, seq);
    });
    this.#emit(header);
  }

  /** An ORDER's decisions as keys, if well formed and from the sequencer. */
  #decode(header: Uint8Array, from: MemberId): number[] | undefined {
    if (header.length < 3 || header[0] !== ORDER) return undefined;
    if (from !== this.#members[0]) return undefined;
    const view = new DataView(header.buffer, header.byteOffset, header.length);
    const count = view.getUint16(1);
    if (header.length !== 3 + 6 * count) return undefined;
    const keys: number[] = [];
    for (let i = 0; i < count; i++) {
      const sender = view.getUint16(3 + 6 * i);
      if (sender >= this.#members.length) return undefined;
      keys.push(keyOf(sender, view.getUint32(5 + 6 * i)));
    }
    return keys;
  }
}

/** A message's key: its sender's index in the view and its sequence number (32 bits). */
function keyOf(sender: number, seq: number): number {
  return sender * 2 ** 32 + seq;
}

/**
 * The `abcast` strategy (wire code 3).
 *
 * @example The sequencer's order decides, whatever the arrival order
 * ```ts
 * import { abcast } from "./abcast.ts";
 * import assert from "node:assert/strict";
 *
 * const view = { viewId: 1, members: ["s", "b"] };
 * const orders: Uint8Array[] = [];
 * const now = (callback: () => void) => callback();
 * const s = abcast.create(view, "s", (header) => orders.push(header), now);
 * const b = abcast.create(view, "b", () => {}, now);
 * const payload = new Uint8Array(0);
 * const m = { sender: "b", seq: 1, header: b.stamp(), payload };
 * assert.deepEqual(s.arrive(m), []); // waits for its own ORDER
 * const order = { sender: "s", seq: 1, header: orders[0], payload };
 * assert.deepEqual(s.arrive(order), [m]);
 * assert.deepEqual(b.arrive(order), []); // b has the order, not yet the data
 * assert.deepEqual(b.arrive(m), [m]);
 * ```
 */
export const abcast: StrategyFactory = {
  name: "abcast",
  code: 3,
  create: (view, me, emit, defer) => new Abcast(view, me, emit, defer),
};
