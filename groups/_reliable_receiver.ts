/**
 * The receiving side of reliable multicast: messages of the other members
 * held in a bounded buffer, delivered in order once contiguous, and NAKs
 * for the gaps.
 *
 * @module
 */

import type { TimerId } from "../runtime/clock.ts";
import type { Shared } from "./_reliable_shared.ts";
import type { SeqStore } from "./_reliable_store.ts";

/** The other members' messages, from arrival to delivery, and the NAKs for what is missing. */
export class Receiver {
  readonly #x: Shared;
  /** Per sender: when its gap is due for a NAK (Infinity: no gap). */
  readonly #nakDue: Float64Array;
  #timer: TimerId | undefined;
  #timerAt = Infinity;

  /**
   * Creates the receiving side.
   *
   * @param shared The instance's shared state.
   */
  constructor(shared: Shared) {
    this.#x = shared;
    this.#nakDue = new Float64Array(shared.o.members.length).fill(Infinity);
  }

  /**
   * Holds the new messages of a DATA frame of sender `s` (the frame is
   * the transport's: only read during the call). When they make up at
   * least a quarter of it, the frame is copied once and they are held as
   * views of the copy; otherwise each is copied: a held message never
   * keeps more than four times its size alive, and nothing is copied for
   * duplicates.
   *
   * @param s The sender's index.
   * @param seqs The frame's seqs.
   * @param payloads The frame's payloads, views of `frame`.
   * @param frame The whole frame.
   */
  holdFrame(
    s: number,
    seqs: readonly number[],
    payloads: readonly Uint8Array[],
    frame: Uint8Array,
  ): void {
    let fresh = 0;
    for (let i = 0; i < seqs.length; i++) {
      if (this.#fits(s, seqs[i])) fresh += payloads[i].length;
    }
    if (fresh * 4 < frame.length) {
      for (let i = 0; i < seqs.length; i++) {
        this.hold(s, seqs[i], payloads[i], true);
      }
      return;
    }
    const copy = frame.slice();
    for (let i = 0; i < seqs.length; i++) {
      const start = payloads[i].byteOffset - frame.byteOffset;
      const view = copy.subarray(start, start + payloads[i].length);
      this.hold(s, seqs[i], view, false);
    }
  }

  /**
   * Holds a message of sender `s`, unless it is a duplicate or beyond the
   * receive buffer (2 x window above what was delivered).
   *
   * @param s The sender's index.
   * @param seq The message's seq.
   * @param payload Its payload.
   * @param copy Whether to hold a copy rather than `payload` itself.
   */
  hold(s: number, seq: number, payload: Uint8Array, copy: boolean): void {
    const x = this.#x;
    if (this.#fits(s, seq)) {
      x.stores[s].put(seq, copy ? payload.slice() : payload);
    } else if (seq > x.acks.get(x.o.me, s) + 2 * x.o.window) {
      x.counters.overflowDropped++;
    } else {
      x.counters.duplicatesDropped++;
    }
  }

  /** Whether `seq` of `s` is new and within the receive buffer. */
  #fits(s: number, seq: number): boolean {
    const x = this.#x;
    const contig = x.acks.get(x.o.me, s);
    return seq > contig && seq <= contig + 2 * x.o.window &&
      x.stores[s].get(seq) === undefined;
  }

  /**
   * Delivers the held messages of sender `s` that became contiguous.
   *
   * @param s The sender's index.
   */
  deliverFrom(s: number): void {
    const x = this.#x;
    const me = x.o.me;
    const store = x.stores[s];
    let delivered = 0;
    // Bounded: each pass delivers (and passes) one held message.
    while (!x.isClosed()) {
      const seq = x.acks.get(me, s) + 1;
      const payload = store.get(seq);
      if (payload === undefined) break;
      x.acks.raise(me, s, seq);
      delivered++;
      x.deliver(s, seq, payload);
    }
    if (delivered > 0) x.ackSoon(delivered);
  }

  /**
   * Notes every sender with a gap (a seq some member holds, or I hold,
   * above what I delivered) and arms the NAK timer for the earliest due.
   *
   * @param now The current time.
   */
  scheduleNaks(now: number): void {
    const x = this.#x;
    const me = x.o.me;
    let due = Infinity;
    for (let s = 0; s < x.stores.length; s++) {
      if (s === me) continue;
      if (Math.max(x.acks.highest(s), x.stores[s].top) > x.acks.get(me, s)) {
        if (this.#nakDue[s] === Infinity) {
          this.#nakDue[s] = now + x.o.nakDelayMs;
        }
        due = Math.min(due, this.#nakDue[s]);
      } else {
        this.#nakDue[s] = Infinity;
      }
    }
    if (due < this.#timerAt && !x.isClosed()) {
      if (this.#timer !== undefined) x.clock.clearTimer(this.#timer);
      this.#timerAt = due;
      this.#timer = x.clock.setTimer(due - now, () => this.#sendNaks(due));
    }
  }

  /** Stops the NAK timer. */
  close(): void {
    if (this.#timer !== undefined) this.#x.clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  /**
   * NAKs every sender whose gap is due at `at` (the time the timer was set
   * for), then re-arms for the next one; a NAK is repeated after
   * `retransmitMs` while its gap lasts.
   */
  #sendNaks(at: number): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const x = this.#x;
    if (x.isClosed()) return;
    const { me, members, viewId, maxNakRanges, window, retransmitMs } = x.o;
    const now = x.clock.now();
    for (let s = 0; s < members.length; s++) {
      if (s === me || this.#nakDue[s] > at) continue;
      this.#nakDue[s] = now + retransmitMs;
      const contig = x.acks.get(me, s);
      const store = x.stores[s];
      const end = Math.min(
        Math.max(x.acks.highest(s), store.top),
        contig + 2 * window,
      );
      const ranges = missingRanges(store, contig, end, maxNakRanges);
      if (ranges.length === 0) continue;
      x.counters.naksSent++;
      x.sendTo(s, x.writer.nak(viewId, me, x.acks.row(me), s, ranges));
    }
    x.settle();
  }
}

/**
 * The seqs above `after` and up to `end` that `store` lacks, as flat
 * inclusive ranges, at most `maxRanges` of them.
 */
function missingRanges(
  store: SeqStore,
  after: number,
  end: number,
  maxRanges: number,
): number[] {
  const ranges: number[] = [];
  let seq = after + 1;
  while (seq <= end && ranges.length < 2 * maxRanges) {
    if (store.get(seq) !== undefined) {
      seq++;
      continue;
    }
    const first = seq;
    while (seq <= end && store.get(seq) === undefined) seq++;
    ranges.push(first, seq - 1);
  }
  return ranges;
}
