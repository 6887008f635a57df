/**
 * Reliable multicast within one installed view: the core of the group
 * engine. Every message carries (view id, sender, seq); receivers deliver
 * each sender's messages once and in order, acknowledge cumulatively on
 * every frame, ask for gaps with NAKs, and senders resend what is missing.
 * A message is stable once every member holds it, and is then dropped.
 *
 * It does no I/O: time comes from the {@linkcode Clock} handed in and frames
 * go out through the `send` function handed in, so the same code runs over
 * TCP or UDP and in the simulator.
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";
import { decodeFrame, FrameWriter, MAX_SEQ } from "./_frame.ts";
import { AckMatrix } from "./_reliable_acks.ts";
import { type ResolvedOptions, resolveOptions } from "./_reliable_options.ts";
import { Receiver } from "./_reliable_receiver.ts";
import { Sender } from "./_reliable_sender.ts";
import type { Shared } from "./_reliable_shared.ts";
import { SeqStore } from "./_reliable_store.ts";
import { PeerWatch } from "./_reliable_watch.ts";
import type { GroupView, MemberId } from "./types.ts";

/** Options of {@linkcode ReliableMulticast}. */
export interface ReliableMulticastOptions {
  /** The installed view (`me` is a member). */
  view: GroupView;
  /** This member. */
  me: MemberId;
  /** Time and timers. */
  clock: Clock;
  /**
   * Hands a frame to the transport; `false` means backpressure (the frame
   * is dropped: retransmission covers it). The frame is a view of a reused
   * buffer, valid only during the call: copy it to keep it (every
   * `Transport.send` does).
   */
  send(to: MemberId, frame: Uint8Array): boolean;
  /**
   * Delivers a message: per sender in sequence order, each exactly once,
   * starting at seq 1 (own messages included, delivered locally at the end
   * of the turn they were multicast in). The payload is held until the
   * message is stable: do not modify it.
   */
  deliver(sender: MemberId, seq: number, payload: Uint8Array): void;
  /** Called when the send window reopens after `multicast()` returned `undefined`. */
  onWindowOpen?: (() => void) | undefined;
  /** A member acknowledged nothing new for `slowAfterMs` while holding up stability (reported once). */
  onSlow?: ((member: MemberId) => void) | undefined;
  /**
   * Nothing at all heard from a member for `suspectAfterMs`, heartbeats
   * included, or since the transport lost its connection
   * `unreachableAfterMs` ago (reported once, with why).
   */
  onSuspect?: ((member: MemberId, reason: string) => void) | undefined;
  /** Most messages of mine not yet stable. Default 4096. */
  window?: number | undefined;
  /** Largest frame sent or accepted; a frame holds many messages. Default 65,536. */
  maxFrameBytes?: number | undefined;
  /**
   * How long a standalone ack waits for data to ride on once an eighth of
   * the window is unacknowledged, in ms. Default 1.
   */
  ackDelayMs?: number | undefined;
  /**
   * How long it waits with fewer unacknowledged, in ms (below
   * `retransmitMs`, or senders resend). Default 20.
   */
  ackIdleMs?: number | undefined;
  /**
   * How long a member whose connection the transport lost may stay
   * unreachable and silent before it is suspected, in ms (at most
   * `suspectAfterMs`). Default 200.
   */
  unreachableAfterMs?: number | undefined;
  /** How long a gap waits before a NAK, in ms. Default 2. */
  nakDelayMs?: number | undefined;
  /** The unacked tail is resent (and a NAK repeated) after this many ms without progress. Default 50. */
  retransmitMs?: number | undefined;
  /** An idle member still sends its ack vector this often, in ms. Default 100. */
  heartbeatMs?: number | undefined;
  /** Silence after which a member is suspected, in ms. Default 1000. */
  suspectAfterMs?: number | undefined;
  /** Time without ack progress after which a member holding up stability is slow, in ms. Default 5000. */
  slowAfterMs?: number | undefined;
}

/** Counters of one {@linkcode ReliableMulticast}; all but `unstableCount` only grow. */
export interface ReliableStats {
  /** Messages multicast by this member. */
  sent: number;
  /** Messages delivered, own included. */
  delivered: number;
  /** Own messages sent again (NAK answers and tail resends). */
  retransmitted: number;
  /** NAK frames sent. */
  naksSent: number;
  /** NAK frames received. */
  naksReceived: number;
  /** Received messages already held or delivered: dropped. */
  duplicatesDropped: number;
  /** Received messages too far ahead of the receive buffer: dropped (retransmission brings them back). */
  overflowDropped: number;
  /** Frames that were malformed or broke the protocol: dropped. */
  badFrames: number;
  /** Frames of another view: dropped. */
  wrongView: number;
  /** Frames from a peer that is not a member of the view: dropped. */
  unknownSender: number;
  /** Frames accepted by `send`, one per destination. */
  framesSent: number;
  /** Valid frames received. */
  framesReceived: number;
  /** Standalone ack rounds (an ACK frame to every other member), heartbeats included. */
  acksSent: number;
  /** Ack rounds sent because nothing else went out for `heartbeatMs`. */
  heartbeatsSent: number;
  /** Frames `send` refused (backpressure): dropped. */
  sendRefused: number;
  /** `multicast` calls refused because the window was full. */
  windowRefusals: number;
  /** Messages held now (not yet stable), every sender. */
  unstableCount: number;
}

/** The counters that only grow: every stat but the held count. */
export type ReliableCounters = Omit<ReliableStats, "unstableCount">;

/** A held message, as {@linkcode ReliableMulticast.unstable} returns it. */
export interface HeldMessage {
  /** Its sequence number. */
  seq: number;
  /** Its payload (held by the instance: do not modify). */
  payload: Uint8Array;
}

/**
 * One member's reliable multicast in one installed view.
 *
 * @example Two members in the simulator
 * ```ts
 * import assert from "node:assert/strict";
 * import { Simulation } from "@cohort/cohort/sim";
 * import { ReliableMulticast } from "./reliable.ts";
 *
 * const sim = new Simulation({ seed: 1, loss: 0.2 });
 * const view = { viewId: 1, members: ["a", "b"] };
 * const got: string[] = [];
 * const members = new Map<string, ReliableMulticast>();
 * for (const me of view.members) {
 *   sim.addNode(me, (env) => {
 *     const rm = new ReliableMulticast({
 *       view, me, clock: env.clock,
 *       send: (to, frame) => env.transport.send(to, frame),
 *       deliver: (from, seq) => got.push(`${me}<-${from}#${seq}`),
 *     });
 *     env.transport.setHandler({ onFrame: (from, frame) => rm.receive(from, frame) });
 *     members.set(me, rm);
 *     return { stop: () => rm.close() };
 *   });
 * }
 * sim.schedule(0, () => members.get("a")!.multicast(new Uint8Array([1])));
 * sim.runFor(500);
 * assert.deepEqual(got.sort(), ["a<-a#1", "b<-a#1"]);
 * ```
 */
export class ReliableMulticast {
  readonly #o: ResolvedOptions;
  readonly #clock: Clock;
  readonly #send: (to: MemberId, frame: Uint8Array) => boolean;
  readonly #acks: AckMatrix;
  readonly #stores: SeqStore[] = [];
  readonly #writer: FrameWriter;
  readonly #counters: ReliableCounters = {
    sent: 0,
    delivered: 0,
    retransmitted: 0,
    naksSent: 0,
    naksReceived: 0,
    duplicatesDropped: 0,
    overflowDropped: 0,
    badFrames: 0,
    wrongView: 0,
    unknownSender: 0,
    framesSent: 0,
    framesReceived: 0,
    acksSent: 0,
    heartbeatsSent: 0,
    sendRefused: 0,
    windowRefusals: 0,
  };
  readonly #sender: Sender;
  readonly #receiver: Receiver;
  readonly #watch: PeerWatch;
  #ackTimer: TimerId | undefined;
  /** Whether the armed ack timer is the short one (`ackDelayMs`). */
  #ackUrgent = false;
  /** Messages delivered since my acks last went out. */
  #unacked = 0;
  /** Per unreachable member (index), the timer that checks it. */
  readonly #unreachableTimers = new Map<number, TimerId>();
  #heartbeatTimer: TimerId | undefined;
  #lastBroadcastAt: number;
  #closed = false;

  /**
   * Starts reliable multicast for `options.me` in `options.view`.
   *
   * @param options The view, this member, the clock, `send`, `deliver`,
   * the optional callbacks and tuning.
   * @throws {TypeError} if `me` is not a member or a member appears twice.
   * @throws {RangeError} if an option is out of range or no message fits in a frame.
   */
  constructor(options: ReliableMulticastOptions) {
    const o = resolveOptions(options);
    const n = o.members.length;
    this.#o = o;
    this.#clock = options.clock;
    this.#acks = new AckMatrix(n);
    for (let i = 0; i < n; i++) this.#stores.push(new SeqStore());
    this.#writer = new FrameWriter(o.maxFrameBytes);
    this.#send = options.send;
    const deliver = options.deliver;
    const counters = this.#counters;
    const shared: Shared = {
      o,
      clock: this.#clock,
      acks: this.#acks,
      stores: this.#stores,
      writer: this.#writer,
      counters,
      isClosed: () => this.#closed,
      sendTo: (m, frame) => this.#sendTo(m, frame),
      broadcast: (frame) => this.#broadcast(frame),
      deliver(s, seq, payload) {
        counters.delivered++;
        deliver(o.members[s], seq, payload);
      },
      ackSoon: (delivered) => this.#ackSoon(delivered),
      settle: () => this.#settle(),
    };
    this.#sender = new Sender(shared, options.onWindowOpen);
    this.#receiver = new Receiver(shared);
    const now = this.#clock.now();
    this.#watch = new PeerWatch(o, options, now);
    this.#lastBroadcastAt = now;
    this.#armHeartbeat();
  }

  /**
   * Whether {@linkcode ReliableMulticast.multicast} would take a message
   * now (not closed, room in the window): a caller that stamps messages
   * asks first, so nothing stamped is refused. A `false` counts as a
   * refusal: `onWindowOpen` follows when there is room.
   */
  get writable(): boolean {
    if (this.#closed) return false;
    if (this.#sender.hasRoom()) return true;
    this.#sender.refused();
    return false;
  }

  /**
   * Multicasts a message to the view (itself included). Messages of one
   * turn of the event loop leave together, in as few frames as fit.
   *
   * @param payload The message; copied, so the caller may reuse it.
   * @returns The message's seq, or `undefined` if the window is full
   * (`onWindowOpen` follows) or the instance is closed.
   * @throws {RangeError} if the payload does not fit in one frame.
   */
  multicast(payload: Uint8Array): number | undefined {
    if (this.#closed) return undefined;
    const o = this.#o;
    if (payload.length > o.maxPayload) {
      throw new RangeError(
        `Cannot multicast ${payload.length} bytes in view ${o.viewId}: at most ${o.maxPayload} fit in a frame of ${o.maxFrameBytes}`,
      );
    }
    return this.#sender.multicast(payload);
  }

  /**
   * Handles a frame from the transport. Malformed frames, frames of another
   * view and frames from non-members are dropped and counted; it never throws
   * on bad input.
   *
   * @param from The peer the frame came from.
   * @param frame The frame (only read during the call: what is held is copied).
   */
  receive(from: MemberId, frame: Uint8Array): void {
    if (this.#closed) return;
    const o = this.#o;
    const counters = this.#counters;
    const result = decodeFrame(frame, o.maxFrameBytes);
    if (!result.ok) {
      counters.badFrames++;
      return;
    }
    const f = result.frame;
    if (f.viewId !== o.viewId) {
      counters.wrongView++;
      // A member already in a newer view is alive: it only learned of the
      // view first (views reach members at different times).
      const m = o.index.get(from);
      if (f.viewId > o.viewId && m !== undefined && m !== o.me) {
        this.#watch.heard(m, this.#clock.now(), false);
      }
      return;
    }
    const m = o.index.get(from);
    if (m === undefined) {
      counters.unknownSender++;
      return;
    }
    const acks = this.#acks;
    if (
      m === o.me || f.sender !== m || f.acks.length !== o.members.length ||
      f.acks[o.me] > acks.get(o.me, o.me) ||
      (f.kind === "nak" && f.target !== o.me)
    ) {
      counters.badFrames++;
      return;
    }
    counters.framesReceived++;
    const now = this.#clock.now();
    const before = acks.get(m, o.me);
    this.#watch.heard(m, now, acks.merge(m, f.acks));
    const after = acks.get(m, o.me);
    if (after > before) this.#sender.acked(m, after, now);
    if (f.kind === "data") {
      this.#receiver.holdFrame(m, f.seqs, f.payloads, frame);
      this.#receiver.deliverFrom(m);
    } else if (f.kind === "nak") {
      counters.naksReceived++;
      this.#sender.answerNak(m, f.ranges);
    }
    this.#settle();
  }

  /**
   * Highest contiguous seq held per sender, for a flush. Own: the last
   * multicast, including what goes out only at the end of this turn (it
   * is held, and `unstable` returns it).
   *
   * @returns Member id to seq.
   */
  received(): Record<MemberId, number> {
    const { me, members } = this.#o;
    const row = this.#acks.row(me);
    return Object.fromEntries(
      members.map((m, i) => [m, i === me ? this.#sender.last : row[i]]),
    );
  }

  /**
   * Highest seq every member holds, per sender.
   *
   * @returns Member id to seq.
   */
  stable(): Record<MemberId, number> {
    return Object.fromEntries(
      this.#o.members.map((m, i) => [m, this.#acks.stable(i)]),
    );
  }

  /**
   * The messages of `sender` held (not yet collected) above `after`, in
   * seq order: for a flush to echo to members that may lack them. Own
   * messages multicast this turn are included.
   *
   * @param sender A member of the view.
   * @param after Only messages with a higher seq.
   * @returns The messages (payloads are held: do not modify).
   * @throws {TypeError} if `sender` is not a member of the view.
   */
  unstable(sender: MemberId, after: number): HeldMessage[] {
    const store = this.#stores[this.#indexOf(sender)];
    const held: HeldMessage[] = [];
    for (let seq = Math.max(after, store.base) + 1; seq <= store.top; seq++) {
      const payload = store.get(seq);
      if (payload !== undefined) held.push({ seq, payload });
    }
    return held;
  }

  /**
   * Takes a message of `sender` echoed by a third member during a flush, as
   * if it had arrived from `sender`: delivered in order, exactly once (a
   * duplicate, or a seq beyond the receive buffer of 2 x window above what
   * was delivered, is dropped and counted).
   *
   * @param sender The message's original sender.
   * @param seq Its seq.
   * @param payload Its payload (copied).
   * @throws {TypeError} if `sender` is not a member of the view.
   * @throws {RangeError} if `seq` is not an integer from 1 to 2^48 - 1.
   */
  accept(sender: MemberId, seq: number, payload: Uint8Array): void {
    if (this.#closed) return;
    const s = this.#indexOf(sender);
    if (!Number.isInteger(seq) || seq < 1 || seq > MAX_SEQ) {
      throw new RangeError(
        `Cannot accept seq ${seq} of ${
          JSON.stringify(sender)
        }: must be an integer from 1 to ${MAX_SEQ}`,
      );
    }
    if (s === this.#o.me) {
      this.#counters.duplicatesDropped++;
      return;
    }
    this.#receiver.hold(s, seq, payload, true);
    this.#receiver.deliverFrom(s);
    this.#settle();
  }

  /**
   * Returns a snapshot of the counters.
   *
   * @returns The counters and the number of messages held.
   */
  stats(): ReliableStats {
    let held = 0;
    for (const store of this.#stores) held += store.size;
    return { ...this.#counters, unstableCount: held };
  }

  /**
   * The transport lost `member`'s connection (`reachable` false) or has
   * it again: a member still unreachable and silent `unreachableAfterMs`
   * later is suspected (see {@linkcode ReliableMulticastOptions.onSuspect}).
   * Unknown members are ignored.
   */
  reachable(member: MemberId, reachable: boolean): void {
    const m = this.#o.index.get(member);
    if (this.#closed || m === undefined || m === this.#o.me) return;
    this.#watch.unreachable(m, reachable ? NaN : this.#clock.now());
    if (!reachable) this.#checkUnreachable(m);
  }

  /** Checks unreachable member `m` when it is due, again if a frame came meanwhile. */
  #checkUnreachable(m: number): void {
    const at = this.#watch.unreachableDue(m);
    if (Number.isNaN(at) || this.#closed || this.#unreachableTimers.has(m)) {
      return;
    }
    this.#unreachableTimers.set(
      m,
      this.#clock.setTimer(at - this.#clock.now(), () => {
        this.#unreachableTimers.delete(m);
        if (this.#closed) return;
        // As of the time armed for, at least: no rounding can make a timer
        // that fires on time find the member not yet due.
        this.#watch.check(
          Math.max(at, this.#clock.now()),
          this.#acks,
          () => this.#closed,
        );
        this.#checkUnreachable(m);
      }),
    );
  }

  /** Stops every timer; later calls of `multicast`, `receive` and `accept` do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sender.close();
    this.#receiver.close();
    for (
      const timer of [
        this.#ackTimer,
        this.#heartbeatTimer,
        ...this.#unreachableTimers.values(),
      ]
    ) {
      if (timer !== undefined) this.#clock.clearTimer(timer);
    }
    this.#unreachableTimers.clear();
    this.#ackTimer = this.#heartbeatTimer = undefined;
  }

  #indexOf(member: MemberId): number {
    const i = this.#o.index.get(member);
    if (i === undefined) {
      throw new TypeError(
        `${JSON.stringify(member)} is not a member of view ${this.#o.viewId}`,
      );
    }
    return i;
  }

  /** After acks or holdings changed: collect what is stable, schedule NAKs, reopen the window. */
  #settle(): void {
    const me = this.#o.me;
    for (let s = 0; s < this.#stores.length; s++) {
      const stable = this.#acks.stable(s);
      this.#stores[s].dropThrough(
        s === me ? Math.min(stable, this.#sender.delivered) : stable,
      );
    }
    this.#receiver.scheduleNaks(this.#clock.now());
    this.#sender.checkWindow();
  }

  #sendTo(m: number, frame: Uint8Array): void {
    if (this.#send(this.#o.members[m], frame)) this.#counters.framesSent++;
    else this.#counters.sendRefused++;
  }

  /** Sends a frame to every other member; it carries my acks, so no standalone ack is due. */
  #broadcast(frame: Uint8Array): void {
    for (let m = 0; m < this.#o.members.length; m++) {
      if (m !== this.#o.me) this.#sendTo(m, frame);
    }
    this.#lastBroadcastAt = this.#clock.now();
    this.#unacked = 0;
    if (this.#ackTimer !== undefined) {
      this.#clock.clearTimer(this.#ackTimer);
      this.#ackTimer = undefined;
    }
  }

  #broadcastAck(): void {
    const { viewId, me } = this.#o;
    this.#counters.acksSent++;
    this.#broadcast(this.#writer.ack(viewId, me, this.#acks.row(me)));
  }

  /**
   * My ack vector grew by `delivered` messages: send it, alone if nothing
   * else goes out, within `ackDelayMs` once an eighth of the window went
   * unacknowledged (senders need the room), else within `ackIdleMs` (a
   * standalone ack per message would cost every sender a frame to read).
   */
  #ackSoon(delivered: number): void {
    if (this.#closed) return;
    this.#unacked += delivered;
    const urgent = this.#unacked >= Math.max(1, this.#o.window >> 3);
    if (this.#ackTimer !== undefined) {
      if (!urgent || this.#ackUrgent) return;
      this.#clock.clearTimer(this.#ackTimer);
    }
    this.#ackUrgent = urgent;
    this.#ackTimer = this.#clock.setTimer(
      urgent ? this.#o.ackDelayMs : this.#o.ackIdleMs,
      () => {
        this.#ackTimer = undefined;
        if (!this.#closed) this.#broadcastAck();
      },
    );
  }

  /**
   * Arms the heartbeat for `heartbeatMs` after the last broadcast: it sends
   * the ack vector if nothing went out since, then checks the peers.
   */
  #armHeartbeat(): void {
    if (this.#o.members.length === 1 || this.#closed) return;
    const at = this.#lastBroadcastAt + this.#o.heartbeatMs;
    this.#heartbeatTimer = this.#clock.setTimer(at - this.#clock.now(), () => {
      this.#heartbeatTimer = undefined;
      if (this.#closed) return;
      // Compared with the time armed for, not with now: no rounding can
      // make a timer that fires on time find nothing to do.
      if (this.#lastBroadcastAt + this.#o.heartbeatMs <= at) {
        this.#counters.heartbeatsSent++;
        this.#broadcastAck();
      }
      this.#watch.check(this.#clock.now(), this.#acks, () => this.#closed);
      this.#armHeartbeat();
    });
  }
}
