/**
 * The sending side of reliable multicast: own messages, the turn-end
 * flush that coalesces them into frames, the window, NAK answers and the
 * resend of an unacknowledged tail.
 *
 * @module
 */

import type { TimerId } from "../runtime/clock.ts";
import { MAX_SEQ } from "./_frame.ts";
import type { Shared } from "./_reliable_shared.ts";

/** This member's own messages, from multicast to stability. */
export class Sender {
  readonly #x: Shared;
  readonly #onWindowOpen: (() => void) | undefined;
  /** Per member: since when it lacks some of my sent messages (NaN: it has them all). */
  readonly #unackedSince: Float64Array;
  /**
   * Own payloads are copied here, one after the other, and held as views:
   * one allocation per frame's worth of messages, not one per message.
   * Messages become stable in seq order, so at most one arena beyond the
   * held messages' stays alive.
   */
  #arena: Uint8Array;
  #arenaAt = 0;
  #lastSeq = 0;
  #delivered = 0;
  #flushQueued = false;
  #windowClosed = false;
  #timer: TimerId | undefined;

  /**
   * Creates the sending side.
   *
   * @param shared The instance's shared state.
   * @param onWindowOpen Called when the window reopens after a refusal.
   */
  constructor(shared: Shared, onWindowOpen: (() => void) | undefined) {
    this.#x = shared;
    this.#onWindowOpen = onWindowOpen;
    this.#unackedSince = new Float64Array(shared.o.members.length).fill(NaN);
    this.#arena = new Uint8Array(shared.o.maxFrameBytes);
  }

  /** The highest own seq given out (sent, or going out at the end of this turn). */
  get last(): number {
    return this.#lastSeq;
  }

  /** The highest own seq delivered locally: own messages are collected no further. */
  get delivered(): number {
    return this.#delivered;
  }

  /** A caller was turned away for lack of room: `onWindowOpen` follows. */
  refused(): void {
    this.#windowClosed = true;
    this.#x.counters.windowRefusals++;
  }

  /** Whether the window has room for one more message of mine. */
  hasRoom(): boolean {
    const x = this.#x;
    return this.#lastSeq - x.acks.stable(x.o.me) < x.o.window &&
      this.#lastSeq < MAX_SEQ;
  }

  /**
   * Assigns the next seq to a copy of `payload` and queues it for the flush
   * at the end of the turn.
   *
   * @param payload The message (already checked to fit in a frame).
   * @returns Its seq, or `undefined` if the window is full.
   */
  multicast(payload: Uint8Array): number | undefined {
    const x = this.#x;
    if (!this.hasRoom()) {
      this.refused();
      return undefined;
    }
    const seq = ++this.#lastSeq;
    x.stores[x.o.me].put(seq, this.#copy(payload));
    x.counters.sent++;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      x.clock.defer(() => this.#flush());
    }
    return seq;
  }

  /** Copies a payload (at most one frame's worth) into the arena. */
  #copy(payload: Uint8Array): Uint8Array {
    let at = this.#arenaAt;
    if (at + payload.length > this.#arena.length) {
      this.#arena = new Uint8Array(this.#arena.length);
      at = 0;
    }
    this.#arena.set(payload, at);
    this.#arenaAt = at + payload.length;
    return this.#arena.subarray(at, this.#arenaAt);
  }

  /**
   * Member `m` now acknowledges my messages up to `seq` (more than before).
   *
   * @param m The member's index.
   * @param seq Its new ack of my messages.
   * @param now The current time.
   */
  acked(m: number, seq: number, now: number): void {
    const x = this.#x;
    this.#unackedSince[m] = seq >= x.acks.get(x.o.me, x.o.me) ? NaN : now;
  }

  /**
   * Resends to member `m` the messages it asked for that I still hold.
   *
   * @param m The member's index.
   * @param ranges Flat inclusive ranges from its NAK.
   */
  answerNak(m: number, ranges: readonly number[]): void {
    this.#resend(m, ranges, Infinity);
  }

  /** Calls `onWindowOpen` if the window was refused and has room again. */
  checkWindow(): void {
    if (this.#windowClosed && this.hasRoom()) {
      this.#windowClosed = false;
      this.#onWindowOpen?.();
    }
  }

  /** Stops the retransmission timer. */
  close(): void {
    if (this.#timer !== undefined) this.#x.clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  /** Sends what was multicast this turn, then delivers it locally. */
  #flush(): void {
    this.#flushQueued = false;
    const x = this.#x;
    if (x.isClosed()) return;
    const { me, members, viewId } = x.o;
    const store = x.stores[me];
    const from = x.acks.get(me, me) + 1;
    const to = this.#lastSeq;
    if (from > to) return;
    x.acks.raise(me, me, to);
    if (members.length > 1) {
      for (let seq = from; seq <= to;) {
        x.writer.beginData(viewId, me, x.acks.row(me));
        while (seq <= to && x.writer.addMessage(seq, store.get(seq)!)) seq++;
        x.broadcast(x.writer.finishData());
      }
      const now = x.clock.now();
      for (let m = 0; m < members.length; m++) {
        if (m !== me && Number.isNaN(this.#unackedSince[m])) {
          this.#unackedSince[m] = now;
        }
      }
      this.#armRetransmit();
    }
    for (
      let seq = this.#delivered + 1;
      seq <= to && !x.isClosed();
      seq = this.#delivered + 1
    ) {
      this.#delivered = seq;
      x.deliver(me, seq, store.get(seq)!);
    }
    x.settle();
  }

  #armRetransmit(): void {
    const x = this.#x;
    if (this.#timer !== undefined || x.isClosed()) return;
    let oldest = Infinity;
    for (const since of this.#unackedSince) {
      if (since < oldest) oldest = since;
    }
    if (oldest === Infinity) return;
    const at = oldest + x.o.retransmitMs;
    this.#timer = x.clock.setTimer(at - x.clock.now(), () => {
      this.#timer = undefined;
      if (!x.isClosed()) this.#resendTails(at);
    });
  }

  /**
   * Resends, to each member without ack progress for `retransmitMs` as of
   * `at` (the time the timer was set for, so that rounding never makes a
   * timer on time find nothing to do), one frame of what it lacks.
   */
  #resendTails(at: number): void {
    const x = this.#x;
    const { me, members, retransmitMs } = x.o;
    const sentThrough = x.acks.get(me, me);
    for (let m = 0; m < members.length; m++) {
      if (m === me || !(this.#unackedSince[m] + retransmitMs <= at)) continue;
      const acked = x.acks.get(m, me);
      this.#unackedSince[m] = acked >= sentThrough ? NaN : x.clock.now();
      if (acked < sentThrough) this.#resend(m, [acked + 1, sentThrough], 1);
    }
    this.#armRetransmit();
  }

  /**
   * Sends to `m` the held messages of mine in `ranges`, in increasing seq
   * order (a range below the previous one is cut), in at most `maxFrames`
   * frames.
   */
  #resend(m: number, ranges: readonly number[], maxFrames: number): void {
    const x = this.#x;
    const { me, viewId } = x.o;
    const store = x.stores[me];
    const writer = x.writer;
    const sentThrough = x.acks.get(me, me);
    let next = store.base + 1;
    let frames = 0;
    let open = false;
    for (let r = 0; r < ranges.length && frames < maxFrames; r += 2) {
      const last = Math.min(ranges[r + 1], sentThrough);
      for (let seq = Math.max(ranges[r], next); seq <= last; seq++) {
        const payload = store.get(seq)!;
        if (open && !writer.addMessage(seq, payload)) {
          x.sendTo(m, writer.finishData());
          open = false;
          if (++frames === maxFrames) break;
        }
        if (!open) {
          writer.beginData(viewId, me, x.acks.row(me));
          writer.addMessage(seq, payload);
          open = true;
        }
        x.counters.retransmitted++;
        next = seq + 1;
      }
    }
    if (open) x.sendTo(m, writer.finishData());
  }
}
