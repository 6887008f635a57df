/**
 * `cbcast`: causal order by vector timestamps (Birman, Schiper and
 * Stephenson). Each cbcast carries, per member of the view, how many of
 * that member's cbcasts its sender had delivered (its own: how many it had
 * sent, this one included). A message waits until every cbcast it could
 * depend on was delivered here: it is the sender's next one, and for
 * every other member no more than delivered here.
 *
 * Only cbcasts count: messages of other strategies neither wait for
 * cbcasts nor are waited for. At the end of a view, every survivor holds
 * the same messages; those still waiting then wait for a message nobody
 * received (its sender crashed), and are dropped everywhere alike.
 *
 * @module
 */

import type {
  OrderedMessage,
  OrderingStrategy,
  StrategyFactory,
} from "./ordering.ts";
import type { GroupView, MemberId } from "./types.ts";

/** A waiting message and its decoded timestamp. */
interface Waiting {
  readonly message: OrderedMessage;
  readonly sender: number;
  readonly stamp: Uint32Array;
}

/** One member's causal order in one view. */
class Cbcast implements OrderingStrategy {
  readonly #index: Map<MemberId, number>;
  readonly #me: number;
  /** Per member: its cbcasts delivered here. */
  readonly #delivered: Uint32Array;
  /** My cbcasts stamped so far. */
  #sent = 0;
  /**
   * Waiting messages per sender, in its order (the reliable layer is
   * FIFO): only each queue's head can be next, so a release looks at one
   * message per sender, not at every message waiting.
   */
  readonly #waiting: Waiting[][];
  /** Where each queue's head is (consumed entries are dropped in bulk). */
  readonly #head: number[];
  #held = 0;
  /** Messages dropped because their header was malformed. */
  malformed = 0;

  constructor(view: GroupView, me: MemberId) {
    this.#index = new Map(view.members.map((m, i) => [m, i]));
    const mine = this.#index.get(me);
    if (mine === undefined) {
      throw new RangeError(`cbcast: ${me} is not in view ${view.viewId}`);
    }
    this.#me = mine;
    this.#delivered = new Uint32Array(view.members.length);
    this.#waiting = view.members.map(() => []);
    this.#head = view.members.map(() => 0);
  }

  get held(): number {
    return this.#held;
  }

  stamp(): Uint8Array {
    const header = new Uint8Array(4 * this.#delivered.length);
    const view = new DataView(header.buffer);
    this.#delivered.forEach((count, i) => view.setUint32(4 * i, count));
    view.setUint32(4 * this.#me, ++this.#sent);
    return header;
  }

  arrive(message: OrderedMessage): OrderedMessage[] {
    const sender = this.#index.get(message.sender);
    const n = this.#delivered.length;
    if (sender === undefined || message.header.length !== 4 * n) {
      this.malformed++;
      return [];
    }
    const view = new DataView(
      message.header.buffer,
      message.header.byteOffset,
      message.header.length,
    );
    const stamp = new Uint32Array(n);
    for (let i = 0; i < n; i++) stamp[i] = view.getUint32(4 * i);
    this.#waiting[sender].push({ message, sender, stamp });
    this.#held++;
    return this.#release();
  }

  drain(): OrderedMessage[] {
    // Whatever still waits depends on a message no survivor received.
    return [];
  }

  /** Delivers every waiting message that became deliverable, in a causal order. */
  #release(): OrderedMessage[] {
    const out: OrderedMessage[] = [];
    let progress = true;
    // Each pass over the senders delivers at least one message or stops:
    // bounded by the number waiting.
    while (progress && this.#held > 0) {
      progress = false;
      for (let s = 0; s < this.#waiting.length; s++) {
        const queue = this.#waiting[s];
        while (this.#head[s] < queue.length) {
          const w = queue[this.#head[s]];
          if (!this.#deliverable(w)) break;
          this.#delivered[s]++;
          this.#head[s]++;
          this.#held--;
          out.push(w.message);
          progress = true;
        }
        if (this.#head[s] > 1024 && this.#head[s] * 2 > queue.length) {
          this.#waiting[s] = queue.slice(this.#head[s]);
          this.#head[s] = 0;
        } else if (this.#head[s] === queue.length && queue.length > 0) {
          queue.length = 0;
          this.#head[s] = 0;
        }
      }
    }
    return out;
  }

  #deliverable({ sender, stamp }: Waiting): boolean {
    const delivered = this.#delivered;
    if (stamp[sender] !== delivered[sender] + 1) return false;
    for (let i = 0; i < stamp.length; i++) {
      if (i !== sender && stamp[i] > delivered[i]) return false;
    }
    return true;
  }
}

/**
 * The `cbcast` strategy (wire code 2).
 *
 * @example b's reply waits for a's message it answers
 * ```ts
 * import { cbcast } from "./cbcast.ts";
 * import assert from "node:assert/strict";
 *
 * const view = { viewId: 1, members: ["a", "b", "c"] };
 * const [a, b, c] = ["a", "b", "c"].map((m) =>
 *   cbcast.create(view, m, () => {}, () => {})
 * );
 * const payload = new Uint8Array(0);
 * const question = { sender: "a", seq: 1, header: a.stamp(), payload };
 * b.arrive(question);
 * const answer = { sender: "b", seq: 1, header: b.stamp(), payload };
 * assert.deepEqual(c.arrive(answer), []); // c has not seen the question
 * assert.deepEqual(c.arrive(question), [question, answer]);
 * ```
 */
export const cbcast: StrategyFactory = {
  name: "cbcast",
  code: 2,
  create: (view, me) => new Cbcast(view, me),
};
