/**
 * One member of one process group: reliable multicast within the
 * installed view, and the flush-then-view change the Oracle drives.
 *
 * The Oracle orders every membership change into a proposal (the next
 * view, and the survivors of the current one) and installs the view once
 * every survivor reported `flushed`. On a proposal each survivor:
 * 1. stops sending in the old view (application sends queue);
 * 2. announces its receive vector (per sender, the highest sequence
 *    number received without a gap) to the other survivors, and delivers
 *    nothing beyond it until the flush target is known;
 * 3. once it has every survivor's vector, computes the target (per
 *    sender, the highest any survivor received) and echoes what others
 *    lack (each missing range by exactly one survivor);
 * 4. once it received everything up to the target, delivers it, drops
 *    anything beyond (a crashed sender's messages nobody else has), and
 *    reports `flushed`.
 *
 * So every survivor delivers the same messages in the old view (view
 * synchrony). A newer proposal (another failure during the flush)
 * restarts the flush with its survivors. The installed view then comes
 * from the Oracle; queued sends go out in it.
 *
 * Between the reliable multicast and the application, each message's
 * ordering strategy (`fbcast`, `cbcast`, `abcast`, or one registered by
 * the application) decides when it is delivered; at the end of a view
 * the strategies deliver what they still hold, alike at every survivor.
 * A `gbcast` goes through the Oracle instead, ordered like a view change:
 * its proposal keeps the members and carries the message, and every
 * survivor delivers it after the rest of the view, before the next view.
 * When a view adds members, the first old member streams a checkpoint of
 * the application's state to them, and they deliver nothing of the view
 * (nor of later views, which reach them in order after) before they
 * restored it.
 *
 * It does no I/O: frames go out through `send`, time comes from `clock`,
 * and the driver feeds it the Oracle's view events and the frames that
 * arrive.
 *
 * @module
 */

import type { Clock } from "../runtime/clock.ts";
import { type Logger, silentLogger, withFields } from "../runtime/log.ts";
import type { GbcastMessage, ViewEvent } from "../oracle/commands.ts";
import { MAX_GBCAST_BYTES } from "../oracle/_client_args.ts";
import { fromBase64 } from "../runtime/_base64.ts";
import {
  ReliableMulticast,
  type ReliableMulticastOptions,
} from "./reliable.ts";
import type { GroupView, MemberId } from "./types.ts";
import type {
  OrderedMessage,
  OrderingStrategy,
  StrategyFactory,
} from "./ordering.ts";
import { fbcast } from "./fbcast.ts";
import { MemberHistory, type StateTransferRecord } from "./_member_history.ts";
import { cbcast } from "./cbcast.ts";
import { abcast } from "./abcast.ts";
import {
  ackFrame,
  decodeState,
  STATE_MAGIC,
  StateReceiver,
  StateSender,
} from "./_state_transfer.ts";
import {
  decodeFlush,
  encodeDone,
  encodeEcho,
  encodeVector,
  FLUSH_MAGIC,
} from "./_flush_frame.ts";
import {
  echoDuties,
  flushTarget,
  type ReceiveVector,
  vectorOf,
} from "./_flush_plan.ts";

/**
 * A multicast waiting to go out: a control message carries its header
 * already; a gbcast has no strategy object (the Oracle orders it).
 */
interface Outgoing {
  readonly payload: Uint8Array;
  readonly factory: StrategyFactory | typeof GBCAST;
  readonly header?: Uint8Array | undefined;
}

/** The name of the ordering the Oracle gives, against every message and view. */
const GBCAST = "gbcast" as const;

/** This member's gbcast waiting for the Oracle to order it. */
interface PendingGbcast {
  readonly seq: number;
  readonly payload: Uint8Array;
  /** A proposal carries it: no more requests. */
  announced: boolean;
}

const EMPTY = new Uint8Array(0);

/** The first byte of a point-to-point frame. */
const DIRECT_MAGIC = 0xc9;

/** Most payload bytes in one echo frame. */
const ECHO_FRAME_BYTES = 60_000;

/** Proposals whose early vectors are kept (see `#early`). */
const MAX_EARLY_PROPOSALS = 4;

/** A message delivered to the application. */
export interface GroupMessage {
  /** The member that multicast it. */
  readonly sender: MemberId;
  /** Its sequence number among the sender's messages in the view. */
  readonly seq: number;
  /** The view it was sent and delivered in. */
  readonly viewId: number;
  /** The ordering strategy it was sent with. */
  readonly strategy: string;
  /** The bytes the sender multicast. */
  readonly payload: Uint8Array;
}

/** Options of a {@linkcode GroupMember}. */
export interface GroupMemberOptions {
  /** This member's name in the group. */
  me: MemberId;
  /** Timers and time. */
  clock: Clock;
  /** Hands a frame to the transport; `false` when it is refused (backpressure). */
  send(to: MemberId, frame: Uint8Array): boolean;
  /**
   * Delivers a message, once, in the view it was sent in, in the order its
   * strategy promises (every strategy is FIFO per sender).
   */
  deliver(message: GroupMessage): void;
  /** A view was installed: every message of the previous view was delivered before. */
  viewInstalled(view: GroupView): void;
  /** Tells the Oracle this member flushed for the proposed view `viewId`. */
  flushed(viewId: number): void;
  /**
   * Asks the Oracle to force a member out (it was silent, or held up
   * stability) if `viewId` is still the installed view: a member that
   * lags behind must not force out those that moved on.
   */
  suspect(member: MemberId, reason: string, viewId: number): void;
  /** The Oracle installed a view without this member: it must rejoin under a new name. */
  excluded?(view: GroupView): void;
  /** Called when queued sends fit again after {@linkcode GroupMember.multicast} returned `false`. */
  writable?(): void;
  /**
   * Asks the Oracle to order this member's gbcast number `seq` (see
   * {@linkcode GroupMember.multicast}). Asked again with the same `seq`
   * every `gbcastResendMs` until a proposal carries it (a request can be
   * lost; the Oracle takes it once). Without it, `gbcast` is refused.
   */
  orderGbcast?(seq: number, payload: Uint8Array): void;
  /** How often an unanswered gbcast request is repeated, in ms. Default 1,000. */
  gbcastResendMs?: number | undefined;
  /** A multicast went out (possibly after waiting in the queue): in which view, under which seq. */
  sent?(
    payload: Uint8Array,
    viewId: number,
    seq: number,
    strategy: string,
  ): void;
  /** The ordering strategies multicasts may name. Default `fbcast`, `cbcast` and `abcast`. */
  strategies?: readonly StrategyFactory[] | undefined;
  /**
   * The application's state, for state transfer. When a view adds
   * members, its first member that is not new takes a checkpoint at the
   * instant the view is installed (after every message of the previous
   * view, before any of the new one) and streams it to the new members;
   * a new member restores it before it delivers any message of its first
   * view. Without it, new members start from nothing.
   */
  state?:
    | {
      /** The state now, as bytes. */
      checkpoint(): Uint8Array;
      /** Replaces the state with a checkpoint. */
      restore(state: Uint8Array): void;
    }
    | undefined;
  /**
   * A new member's state transfer was cut short: the member streaming it
   * left the group first. The member stopped (it delivers nothing more,
   * and does not flush): it should have itself removed at once (a leave
   * would wait for the change in flight, which waits for its flush) and
   * join again under a new name.
   */
  stateLost?(): void;
  /** Bytes per state-transfer chunk. Default 60,000. */
  stateChunkBytes?: number | undefined;
  /**
   * Where view installs, flushes, suspicions and state transfers are
   * logged, one line each (never one per message). Default: silent.
   */
  logger?: Logger | undefined;
  /** A point-to-point message from a member of the view ({@linkcode GroupMember.sendDirect}). */
  direct?(from: MemberId, payload: Uint8Array): void;
  /** Most application sends queued while there is no view, a flush runs or the window is full. Default 10,000. */
  maxQueued?: number;
  /**
   * While a flush runs, its frames (vector, echoes) are sent again this
   * often, in ms, to survivors not done yet (frames can be lost). Default 50.
   */
  flushResendMs?: number;
  /** Tuning of the reliable multicast of each view. */
  reliable?:
    | Omit<
      ReliableMulticastOptions,
      | "view"
      | "me"
      | "clock"
      | "send"
      | "deliver"
      | "onWindowOpen"
      | "onSlow"
      | "onSuspect"
    >
    | undefined;
}

/** A flush in progress: for the proposed view `proposal`. */
interface Flush {
  readonly proposal: number;
  readonly survivors: readonly MemberId[];
  /** Survivors' announced vectors (this member's included), by member. */
  readonly vectors: Map<MemberId, ReceiveVector>;
  /** Per sender: deliver up to this; beyond it messages wait (or are dropped once the target is known). */
  limit: Record<MemberId, number>;
  /** The target, once every survivor's vector is in. */
  target: Record<MemberId, number> | undefined;
  /** Whether `flushed` was reported. */
  done: boolean;
  /** Survivors that said they are done (nothing more to resend them). */
  readonly peersDone: Set<MemberId>;
  /** This member's vector frame, resent until every survivor is done. */
  readonly vectorFrame: Uint8Array;
  /** When the flush started (clock ms). */
  readonly startedAt: number;
  /** The echoes this member owes, encoded once the target is known. */
  echoes:
    | { readonly member: MemberId; readonly frame: Uint8Array }[]
    | undefined;
}

/** A checkpoint being streamed to new members. */
interface Outbound {
  readonly sender: StateSender;
  readonly joiners: readonly MemberId[];
  readonly bytes: number;
  readonly startedAt: number;
}

/** What a {@linkcode GroupMember} is doing, for tests and status pages. */
export interface GroupMemberStatus {
  /** The installed view, or `null` before the first. */
  view: GroupView | null;
  /** The proposed view being flushed, or `null`. */
  flushing: number | null;
  /** Application sends waiting. */
  queued: number;
  /** Messages delivered to the application. */
  delivered: number;
  /** Frames dropped as malformed or out of place. */
  badFrames: number;
  /** Whether the Oracle installed a view without this member. */
  excluded: boolean;
  /** Whether this new member waits for its state (and holds deliveries meanwhile). */
  awaitingState: boolean;
  /** Whether this member's gbcast waits for the Oracle (its later sends wait behind it). */
  gbcastPending: boolean;
  /** Messages this member multicast, every view (strategies' control messages, such as abcast's ORDER, included). */
  sent: number;
  /** Own messages sent again (NAK answers and tail resends), every view. */
  retransmitted: number;
  /** Messages held now, not yet known received by every member (this view). */
  unstable: number;
  /** Flushes finished (views installed after one). */
  flushes: number;
  /** How long the last flush took, from its proposal to the new view, in ms; `null` before the first. */
  lastFlushMs: number | null;
  /** The latest finished state transfers (at most 8), oldest first. */
  stateTransfers: readonly StateTransferRecord[];
}

/** One member of one process group (see the module documentation). */
export class GroupMember {
  readonly #options: GroupMemberOptions;
  readonly #maxQueued: number;
  readonly #flushResendMs: number;
  #view: GroupView | undefined;
  #reliable: ReliableMulticast | undefined;
  #flush: Flush | undefined;
  /** Messages received beyond the flush limit, per sender, in order. */
  #held = new Map<MemberId, { seq: number; payload: Uint8Array }[]>();
  /** Highest seq delivered to the application per sender, in the current view. */
  #deliveredUpTo = new Map<MemberId, number>();
  readonly #queue: Outgoing[] = [];
  /** Control messages the strategies emitted: they go before the application's. */
  readonly #control: Outgoing[] = [];
  /** The strategies by name and by wire code. */
  readonly #byName = new Map<string, StrategyFactory>();
  readonly #byCode = new Map<number, StrategyFactory>();
  /** This view's instance of each strategy, by wire code. */
  #ordering = new Map<number, OrderingStrategy>();
  #refused = false;
  #delivered = 0;
  #badFrames = 0;
  #excluded = false;
  #closed = false;
  /** A proposal leaves this member out: it sends nothing more. */
  #departing = false;
  /** Members already reported in this view. */
  #reported = new Set<MemberId>();
  /** Checkpoints being streamed to new members. */
  #senders: Outbound[] = [];
  /** This new member's incoming checkpoint, who sends it, and since when. */
  #receiver:
    | { state: StateReceiver; provider: MemberId; startedAt: number }
    | undefined;
  /** Totals across views, flush durations, state transfers; the log. */
  readonly #history: MemberHistory;
  /** Where outgoing messages are framed with their strategy and stamp. */
  #envelope = new Uint8Array(1024);
  /** Deliveries held until the state is restored. */
  #pendingApp: (
    | { message: GroupMessage }
    | { view: GroupView; joined: readonly MemberId[] }
  )[] = [];
  /**
   * Vectors that arrived for a proposal this member has not seen yet (the
   * Oracle's events reach members at different times: the sender may even
   * have installed a view this member has not), by proposal, as sent: the
   * view they are from and the receive counts in its member order.
   * Bounded: only the newest few proposals are kept.
   */
  #early = new Map<
    number,
    Map<MemberId, { oldView: number; received: readonly number[] }>
  >();
  /** Members whose connection the transport lost (until it has it again). */
  readonly #unreachable = new Set<MemberId>();
  /** This member's gbcast in flight, if any. */
  #gbcast: PendingGbcast | undefined;
  /** The number of this member's last gbcast. */
  #gbcastSeq = 0;

  /** Creates a member with no view yet: it waits for its first installed view. */
  constructor(options: GroupMemberOptions) {
    this.#options = options;
    this.#maxQueued = options.maxQueued ?? 10_000;
    this.#flushResendMs = options.flushResendMs ?? 50;
    this.#history = new MemberHistory(
      withFields(options.logger ?? silentLogger, { member: options.me }),
    );
    for (const factory of options.strategies ?? [fbcast, cbcast, abcast]) {
      if (
        !Number.isInteger(factory.code) || factory.code < 1 ||
        factory.code > 255 || this.#byCode.has(factory.code) ||
        this.#byName.has(factory.name)
      ) {
        throw new RangeError(
          `Invalid strategy ${
            JSON.stringify(factory.name)
          }: its name and code (1-255, got ${factory.code}) must be unique`,
        );
      }
      this.#byName.set(factory.name, factory);
      this.#byCode.set(factory.code, factory);
    }
    if (!Number.isSafeInteger(this.#maxQueued) || this.#maxQueued < 1) {
      throw new RangeError(
        `Invalid maxQueued ${this.#maxQueued}: use a positive integer`,
      );
    }
  }

  /** The installed view, if any. */
  get view(): GroupView | undefined {
    return this.#view;
  }

  /**
   * Multicasts `payload` to the view (FIFO per sender, view synchronous),
   * or queues it while there is no view, a flush runs or the send window
   * is full. Queued sends go out in order, in the next view they can.
   *
   * A `gbcast` (with {@linkcode GroupMemberOptions.orderGbcast}) is
   * ordered by the Oracle like a view change: every member delivers it
   * after every other message of the view it ends, before the next view
   * (which has the same members). It costs an Oracle round and a flush;
   * this member's later sends wait until it is delivered.
   *
   * @param payload The bytes; copied, so the caller may reuse the buffer.
   * @param strategy The ordering it is delivered in. Default `fbcast`.
   * @returns `false` if the queue is full (`maxQueued`): the payload was
   * not taken; {@linkcode GroupMemberOptions.writable} says when to retry.
   * @throws {RangeError} if `strategy` is not one of the member's, or a
   * gbcast payload is larger than 12,288 bytes.
   */
  multicast(payload: Uint8Array, strategy = "fbcast"): boolean {
    const factory = strategy === GBCAST &&
        this.#options.orderGbcast !== undefined
      ? GBCAST
      : this.#byName.get(strategy);
    if (factory === undefined) {
      throw new RangeError(
        `Unknown ordering strategy ${JSON.stringify(strategy)}: use one of ${
          [
            ...this.#byName.keys(),
            ...(this.#options.orderGbcast ? [GBCAST] : []),
          ].join(", ")
        }`,
      );
    }
    if (factory === GBCAST && payload.length > MAX_GBCAST_BYTES) {
      throw new RangeError(
        `A gbcast payload of ${payload.length} bytes is too large: at most ${MAX_GBCAST_BYTES} bytes`,
      );
    }
    if (this.#closed || this.#excluded) return false;
    const item = { payload, factory };
    if (
      this.#queue.length === 0 && this.#control.length === 0 &&
      this.#trySend(item)
    ) return true;
    if (this.#queue.length >= this.#maxQueued) {
      this.#refused = true;
      return false;
    }
    // Sent later: a copy, since the caller may reuse its buffer.
    this.#queue.push({ payload: payload.slice(), factory });
    return true;
  }

  /** Asks the Oracle for `gbcast`, again every `gbcastResendMs` until a proposal carries it. */
  #requestGbcast(gbcast: PendingGbcast): void {
    this.#options.orderGbcast!(gbcast.seq, gbcast.payload);
    this.#options.clock.setTimer(this.#options.gbcastResendMs ?? 1_000, () => {
      if (
        this.#gbcast === gbcast && !gbcast.announced && !this.#closed &&
        !this.#excluded
      ) this.#requestGbcast(gbcast);
    });
  }

  /** A proposal from view `viewId` carries `messages`: this member's gbcast is sent in that view. */
  #announceGbcast(
    messages: readonly GbcastMessage[] | undefined,
    viewId: number,
  ): void {
    const gbcast = this.#gbcast;
    if (
      gbcast === undefined || gbcast.announced ||
      !messages?.some((m) =>
        m.member === this.#options.me && m.seq === gbcast.seq
      )
    ) return;
    gbcast.announced = true;
    this.#options.sent?.(gbcast.payload, viewId, gbcast.seq, GBCAST);
  }

  /**
   * Sends `payload` to one member of the view, point to point, for a
   * reply: best effort (the transport's), outside the view's ordering and
   * flush. A member that is not in the view drops it.
   *
   * @returns `false` if it was not handed to the transport (no view, the
   * member is not in it, or backpressure).
   */
  sendDirect(to: MemberId, payload: Uint8Array): boolean {
    if (this.#closed || !this.#view?.members.includes(to)) return false;
    const frame = new Uint8Array(1 + payload.length);
    frame[0] = DIRECT_MAGIC;
    frame.set(payload, 1);
    return this.#options.send(to, frame);
  }

  /**
   * Feeds an event of the group's view channel (as the Oracle appended
   * it, in order).
   */
  onViewEvent(event: ViewEvent): void {
    if (this.#closed || this.#excluded) return;
    if (event.type === "propose") {
      const current = this.#view;
      if (current === undefined || event.fromViewId !== current.viewId) return;
      if (!event.survivors.includes(this.#options.me)) {
        // Leaving or forced out: send nothing more in this view.
        this.#departing = true;
        return;
      }
      this.#announceGbcast(event.messages, current.viewId);
      if (this.#flush !== undefined && this.#flush.proposal >= event.viewId) {
        return;
      }
      this.#startFlush(event.viewId, event.survivors);
      return;
    }
    if (this.#view !== undefined && event.viewId <= this.#view.viewId) return;
    const members = event.members.map((m) => m.member);
    const view: GroupView = { viewId: event.viewId, members };
    if (!members.includes(this.#options.me)) {
      if (this.#view !== undefined) {
        for (const { sender } of this.#senders) sender.close();
        this.#senders = [];
        this.#receiver = undefined;
        this.#pendingApp = [];
        this.#excluded = true;
        this.#flush = undefined;
        this.#reliable?.close();
        this.#reliable = undefined;
        this.#options.excluded?.(view);
      }
      return;
    }
    const incoming = this.#receiver;
    if (incoming !== undefined && !members.includes(incoming.provider)) {
      // The member streaming this new member's state left before the
      // state arrived: it cannot be trusted with any; it stops.
      this.close();
      this.#options.stateLost?.();
      return;
    }
    this.#install(view, event.joined, event.messages ?? []);
  }

  /**
   * The transport lost the connection to `member` (`reachable` false), or
   * has it again. A crashed process's connections close at once, so a
   * member that stays unreachable and silent for `unreachableAfterMs`
   * (default 200) is suspected without waiting for `suspectAfterMs`.
   */
  reachable(member: MemberId, reachable: boolean): void {
    if (reachable) this.#unreachable.delete(member);
    else if (this.#view?.members.includes(member)) {
      this.#unreachable.add(member);
    }
    this.#reliable?.reachable(member, reachable);
  }

  /** Feeds a frame that arrived from `from`. */
  receive(from: MemberId, frame: Uint8Array): void {
    if (this.#closed) return;
    if (frame.length > 0 && frame[0] === DIRECT_MAGIC) {
      if (this.#view?.members.includes(from)) {
        this.#options.direct?.(from, frame.subarray(1));
      } else {
        this.#badFrames++;
      }
      return;
    }
    if (frame.length > 0 && frame[0] === STATE_MAGIC) {
      this.#onStateFrame(from, frame);
      return;
    }
    if (frame.length > 0 && frame[0] === FLUSH_MAGIC) {
      this.#onFlushFrame(from, frame);
      return;
    }
    if (this.#reliable === undefined) {
      this.#badFrames++;
      return;
    }
    this.#reliable.receive(from, frame);
  }

  /** Whether this new member waits for its state (and holds deliveries meanwhile). */
  get awaitingState(): boolean {
    return this.#receiver !== undefined;
  }

  /** A snapshot of the member's state. */
  status(): GroupMemberStatus {
    const reliable = this.#reliable?.stats();
    const totals = this.#history.totals(reliable);
    return {
      view: this.#view ?? null,
      flushing: this.#flush?.done === false ? this.#flush.proposal : null,
      queued: this.#queue.length,
      delivered: this.#delivered,
      badFrames: this.#badFrames,
      excluded: this.#excluded,
      awaitingState: this.awaitingState,
      gbcastPending: this.#gbcast !== undefined,
      sent: totals.sent,
      retransmitted: totals.retransmitted,
      unstable: reliable?.unstableCount ?? 0,
      flushes: this.#history.flushes,
      lastFlushMs: this.#history.lastFlushMs,
      stateTransfers: this.#history.stateTransfers,
    };
  }

  /** Stops timers; the member does nothing afterwards. */
  close(): void {
    this.#closed = true;
    this.#flush = undefined;
    for (const { sender } of this.#senders) sender.close();
    this.#senders = [];
    this.#reliable?.close();
    this.#reliable = undefined;
  }

  // ------------------------------------------------------------ sending

  #trySend(item: Outgoing): boolean {
    const reliable = this.#reliable;
    if (
      this.#flush !== undefined || reliable === undefined || this.#departing
    ) return false;
    // After a gbcast, this member's own sends wait for it (FIFO per
    // sender); the strategies' control messages do not.
    if (this.#gbcast !== undefined && item.header === undefined) return false;
    const { payload, factory } = item;
    if (factory === GBCAST) {
      // Kept for resends: a copy, since the caller may reuse its buffer.
      this.#gbcast = {
        seq: ++this.#gbcastSeq,
        payload: payload.slice(),
        announced: false,
      };
      this.#requestGbcast(this.#gbcast);
      return true;
    }
    if (!reliable.writable) return false;
    // Stamped only once the window has room: a stamp is never wasted.
    const header = item.header ?? this.#ordering.get(factory.code)!.stamp();
    // Built in a reused buffer: the reliable multicast copies it.
    const size = 3 + header.length + payload.length;
    if (this.#envelope.length < size) {
      this.#envelope = new Uint8Array(
        Math.max(size, 2 * this.#envelope.length),
      );
    }
    const envelope = this.#envelope;
    envelope[0] = factory.code;
    envelope[1] = header.length >> 8;
    envelope[2] = header.length & 0xff;
    envelope.set(header, 3);
    envelope.set(payload, 3 + header.length);
    const seq = reliable.multicast(envelope.subarray(0, size))!;
    if (item.header === undefined) {
      this.#options.sent?.(payload, this.#view!.viewId, seq, factory.name);
    }
    return true;
  }

  #drainQueue(): void {
    let control = 0;
    while (
      control < this.#control.length && this.#trySend(this.#control[control])
    ) {
      control++;
    }
    this.#control.splice(0, control);
    if (this.#control.length > 0) return;
    let sent = 0;
    while (sent < this.#queue.length && this.#trySend(this.#queue[sent])) {
      sent++;
    }
    this.#queue.splice(0, sent);
    if (this.#refused && this.#queue.length < this.#maxQueued) {
      this.#refused = false;
      this.#options.writable?.();
    }
  }

  // ----------------------------------------------------------- delivery

  /** From the reliable multicast: in order per sender, once. */
  #onReliable(sender: MemberId, seq: number, payload: Uint8Array): void {
    const flush = this.#flush;
    if (flush !== undefined && seq > (flush.limit[sender] ?? 0)) {
      let held = this.#held.get(sender);
      if (held === undefined) this.#held.set(sender, held = []);
      held.push({ seq, payload });
      return;
    }
    this.#deliver(sender, seq, payload);
    if (flush !== undefined) this.#progressFlush();
  }

  /** A message leaves the FIFO layer: its strategy decides when the application gets it. */
  #deliver(sender: MemberId, seq: number, envelope: Uint8Array): void {
    this.#deliveredUpTo.set(sender, seq);
    const code = envelope[0];
    const ordering = this.#ordering.get(code);
    const length = envelope.length >= 3
      ? (envelope[1] << 8) | envelope[2]
      : Infinity;
    if (ordering === undefined || 3 + length > envelope.length) {
      this.#badFrames++;
      return;
    }
    const ready = ordering.arrive({
      sender,
      seq,
      header: envelope.subarray(3, 3 + length),
      payload: envelope.subarray(3 + length),
    });
    this.#toApplication(this.#byCode.get(code)!.name, ready);
  }

  #toApplication(strategy: string, messages: readonly OrderedMessage[]): void {
    const viewId = this.#view!.viewId;
    for (const { sender, seq, payload } of messages) {
      const message = { sender, seq, viewId, strategy, payload };
      if (this.#receiver !== undefined) {
        // A new member delivers nothing before its state is restored.
        this.#pendingApp.push({ message });
        continue;
      }
      this.#delivered++;
      this.#options.deliver(message);
    }
  }

  // ----------------------------------------------------- state transfer

  #onStateFrame(from: MemberId, bytes: Uint8Array): void {
    if (this.#excluded) return;
    const frame = decodeState(bytes);
    if ("error" in frame) {
      this.#badFrames++;
      return;
    }
    if (frame.kind === "ack") {
      for (const outbound of this.#senders) {
        if (outbound.sender.transfer !== frame.transfer) continue;
        outbound.sender.onAck(from, frame.next);
        if (outbound.sender.done) this.#sentState(outbound);
      }
      return;
    }
    const incoming = this.#receiver;
    if (
      incoming === undefined || incoming.provider !== from ||
      frame.transfer !== incoming.state.transfer
    ) {
      return;
    }
    const state = incoming.state.onChunk(frame.count, frame.index, frame.bytes);
    this.#options.send(from, ackFrame(frame.transfer, incoming.state.next));
    if (state === undefined) return;
    this.#receiver = undefined;
    this.#options.state!.restore(state);
    const now = this.#options.clock.now();
    this.#history.transferred({
      viewId: incoming.state.transfer,
      direction: "received",
      peers: [incoming.provider],
      bytes: state.length,
      ms: now - incoming.startedAt,
    });
    // What happened since, in order: messages, and views installed meanwhile.
    const pending = this.#pendingApp;
    this.#pendingApp = [];
    for (const item of pending) {
      if ("view" in item) {
        this.#viewToApplication(item.view, item.joined);
      } else {
        this.#delivered++;
        this.#options.deliver(item.message);
      }
    }
  }

  /**
   * At the install of `view` (which added `joined`): a new member waits
   * for its state from the view's first old member, through later views
   * while that member stays; if it leaves first, the new member stops
   * ({@linkcode GroupMemberOptions.stateLost}). Transfers to members no
   * longer in the view stop.
   */
  #transferState(view: GroupView, joined: readonly MemberId[]): void {
    for (const { sender } of this.#senders) sender.keepOnly(view.members);
    this.#senders = this.#senders.filter((s) => !s.sender.done);
    if (
      this.#options.state === undefined || !joined.includes(this.#options.me)
    ) {
      return;
    }
    const provider = view.members.find((m) => !joined.includes(m));
    if (provider !== undefined) {
      this.#receiver = {
        state: new StateReceiver(view.viewId),
        provider,
        startedAt: this.#options.clock.now(),
      };
    }
  }

  /**
   * The application learns of `view`: at its install, or, for a member
   * still waiting for its own state, once that state is restored and what
   * came before is delivered. If the view added members and this is its
   * first old member, the checkpoint is taken now (exactly the state at
   * the view) and streamed to them.
   */
  #viewToApplication(view: GroupView, joined: readonly MemberId[]): void {
    this.#options.viewInstalled(view);
    const state = this.#options.state;
    if (state === undefined || joined.length === 0) return;
    const provider = view.members.find((m) => !joined.includes(m));
    if (provider !== this.#options.me) return;
    const joiners = joined.filter((m) => this.#view?.members.includes(m));
    if (joiners.length === 0) return;
    const checkpoint = state.checkpoint();
    this.#senders.push({
      sender: new StateSender({
        transfer: view.viewId,
        state: checkpoint,
        joiners,
        clock: this.#options.clock,
        send: (to, frame) => this.#options.send(to, frame),
        chunkBytes: this.#options.stateChunkBytes ?? 60_000,
        window: 16,
        resendMs: 100,
      }),
      joiners,
      bytes: checkpoint.length,
      startedAt: this.#options.clock.now(),
    });
  }

  /** Every joiner of `outbound` acknowledged the whole checkpoint. */
  #sentState(outbound: Outbound): void {
    this.#senders = this.#senders.filter((s) => s !== outbound);
    const now = this.#options.clock.now();
    this.#history.transferred({
      viewId: outbound.sender.transfer,
      direction: "sent",
      peers: outbound.joiners,
      bytes: outbound.bytes,
      ms: now - outbound.startedAt,
    });
  }

  // -------------------------------------------------------------- flush

  #startFlush(proposal: number, survivors: readonly MemberId[]): void {
    const view = this.#view!;
    const reliable = this.#reliable!;
    const received = reliable.received();
    // Deliver nothing beyond what this member announces until the target
    // is known; a restarted flush keeps what was delivered already.
    const limit: Record<MemberId, number> = {};
    for (const member of view.members) {
      limit[member] = Math.max(
        received[member] ?? 0,
        this.#deliveredUpTo.get(member) ?? 0,
      );
    }
    const vectors = new Map<MemberId, ReceiveVector>();
    for (const [from, early] of this.#early.get(proposal) ?? []) {
      if (
        early.oldView === view.viewId &&
        early.received.length === view.members.length &&
        view.members.includes(from)
      ) {
        vectors.set(from, vectorOf(view.members, early.received));
      }
    }
    vectors.set(this.#options.me, limit);
    for (const known of this.#early.keys()) {
      if (known <= proposal) this.#early.delete(known);
    }
    const flush: Flush = {
      proposal,
      survivors,
      vectors,
      limit,
      target: undefined,
      done: false,
      peersDone: new Set(),
      vectorFrame: encodeVector({
        proposal,
        oldView: view.viewId,
        received: view.members.map((m) => limit[m]),
      }),
      startedAt: this.#flush?.startedAt ?? this.#options.clock.now(),
      echoes: undefined,
    };
    this.#flush = flush;
    this.#sendFlushFrames(flush);
    this.#progressFlush();
    this.#scheduleResend(flush);
  }

  /** Sends the vector, and the echoes once the target is known, to survivors not done. */
  #sendFlushFrames(flush: Flush): void {
    for (const member of flush.survivors) {
      if (member === this.#options.me || flush.peersDone.has(member)) continue;
      this.#options.send(member, flush.vectorFrame);
    }
    if (flush.target !== undefined) this.#echo(flush);
  }

  /** Resends the flush's frames until it is superseded or the view installed. */
  #scheduleResend(flush: Flush): void {
    this.#options.clock.setTimer(this.#flushResendMs, () => {
      if (this.#flush !== flush || this.#closed) return;
      if (
        flush.survivors.every((m) =>
          m === this.#options.me || flush.peersDone.has(m)
        )
      ) return;
      this.#sendFlushFrames(flush);
      this.#scheduleResend(flush);
    });
  }

  #onFlushFrame(from: MemberId, bytes: Uint8Array): void {
    const view = this.#view;
    const frame = decodeFlush(bytes);
    if ("error" in frame) {
      this.#badFrames++;
      return;
    }
    if (
      frame.kind === "vector" && frame.proposal > frame.oldView &&
      frame.oldView > (view?.viewId ?? 0)
    ) {
      // From a view this member has not installed yet: kept for later.
      this.#keepEarly(from, frame);
      return;
    }
    if (view === undefined || frame.oldView !== view.viewId) {
      this.#badFrames++;
      return;
    }
    if (frame.kind === "done") {
      if (this.#flush?.proposal === frame.proposal) {
        this.#flush.peersDone.add(from);
      }
      return;
    }
    if (frame.kind === "echo") {
      const sender = view.members[frame.sender];
      if (sender === undefined || this.#reliable === undefined) {
        this.#badFrames++;
        return;
      }
      frame.payloads.forEach((payload, i) =>
        this.#reliable!.accept(sender, frame.first + i, payload)
      );
      this.#progressFlush();
      return;
    }
    const flush = this.#flush;
    if (
      frame.received.length !== view.members.length ||
      !view.members.includes(from)
    ) {
      this.#badFrames++;
      return;
    }
    if (flush !== undefined && frame.proposal === flush.proposal) {
      flush.vectors.set(from, vectorOf(view.members, frame.received));
      this.#progressFlush();
    } else if (flush === undefined || frame.proposal > flush.proposal) {
      // This member has not seen that proposal yet: keep the vector for it.
      this.#keepEarly(from, frame);
    }
  }

  /** Keeps a vector for a proposal this member has not seen (see `#early`). */
  #keepEarly(
    from: MemberId,
    frame: { proposal: number; oldView: number; received: readonly number[] },
  ): void {
    let early = this.#early.get(frame.proposal);
    if (early === undefined) {
      this.#early.set(frame.proposal, early = new Map());
      const oldest = Math.min(...this.#early.keys());
      if (this.#early.size > MAX_EARLY_PROPOSALS) this.#early.delete(oldest);
    }
    early.set(from, { oldView: frame.oldView, received: frame.received });
  }

  /** Moves the flush on: target once every vector is in, echoes, delivery, report. */
  #progressFlush(): void {
    const flush = this.#flush;
    const view = this.#view;
    const reliable = this.#reliable;
    if (flush === undefined || flush.done || !view || !reliable) return;
    if (flush.target === undefined) {
      if (!flush.survivors.every((m) => flush.vectors.has(m))) return;
      flush.target = flushTarget(view.members, [...flush.vectors.values()]);
      flush.limit = flush.target;
      this.#releaseHeld(flush.target);
      this.#echo(flush);
    }
    const target = flush.target;
    const delivered = this.#deliveredUpTo;
    if (view.members.some((m) => (delivered.get(m) ?? 0) < target[m])) return;
    // Whatever is still held lies beyond the target: nobody delivers it
    // in this flush (a newer one may take it; the new view drops it).
    flush.done = true;
    const done = encodeDone({ proposal: flush.proposal, oldView: view.viewId });
    for (const member of flush.survivors) {
      if (member !== this.#options.me) this.#options.send(member, done);
    }
    this.#options.flushed(flush.proposal);
    this.#history.flushed(
      flush.proposal,
      this.#options.clock.now() - flush.startedAt,
    );
  }

  /** Delivers, in order, the held messages at or below `limit`; keeps the rest. */
  #releaseHeld(limit: Record<MemberId, number>): void {
    for (const [member, held] of this.#held) {
      let released = 0;
      while (released < held.length && held[released].seq <= limit[member]) {
        this.#deliver(member, held[released].seq, held[released].payload);
        released++;
      }
      held.splice(0, released);
    }
  }

  /** Sends the echoes this member owes to the survivors not done (encoded on first use). */
  #echo(flush: Flush): void {
    flush.echoes ??= this.#echoFrames(flush);
    for (const { member, frame } of flush.echoes) {
      if (!flush.peersDone.has(member)) this.#options.send(member, frame);
    }
  }

  /** The echoes this member owes (see `echoDuties`), as frames. */
  #echoFrames(flush: Flush): { member: MemberId; frame: Uint8Array }[] {
    const view = this.#view!;
    const reliable = this.#reliable!;
    const survivors = flush.survivors.map((m) =>
      [m, flush.vectors.get(m)!] as const
    );
    const frames: { member: MemberId; frame: Uint8Array }[] = [];
    for (const duty of echoDuties(this.#options.me, view.members, survivors)) {
      const sender = view.members.indexOf(duty.sender);
      const messages = reliable.unstable(duty.sender, duty.from - 1)
        .filter((m) => m.seq <= duty.to);
      // In frames of at most ECHO_FRAME_BYTES of payload (one message at
      // least): a backlog can be far larger than a transport frame.
      for (let start = 0; start < messages.length;) {
        let end = start;
        let bytes = 0;
        while (
          end < messages.length &&
          (end === start ||
            bytes + messages[end].payload.length <= ECHO_FRAME_BYTES)
        ) {
          bytes += messages[end].payload.length;
          end++;
        }
        frames.push({
          member: duty.member,
          frame: encodeEcho({
            oldView: view.viewId,
            sender,
            first: messages[start].seq,
            payloads: messages.slice(start, end).map((m) => m.payload),
          }),
        });
        start = end;
      }
    }
    return frames;
  }

  // ---------------------------------------------------------- new view

  #install(
    view: GroupView,
    joined: readonly MemberId[],
    gbcasts: readonly GbcastMessage[],
  ): void {
    if (this.#view !== undefined && this.#flush?.done === true) {
      // The old view ends: every survivor received the same messages of
      // it, so the strategies deliver what they still hold alike; then
      // the gbcasts the Oracle ordered at its end.
      for (const [code, ordering] of this.#ordering) {
        this.#toApplication(this.#byCode.get(code)!.name, ordering.drain());
      }
      this.#deliverGbcasts(gbcasts);
    }
    this.#control.length = 0;
    this.#transferState(view, joined);
    const flushMs = this.#flush === undefined
      ? undefined
      : this.#options.clock.now() - this.#flush.startedAt;
    if (this.#reliable !== undefined) {
      this.#history.endView(this.#reliable.stats());
      this.#reliable.close();
    }
    this.#flush = undefined;
    this.#held.clear();
    this.#deliveredUpTo.clear();
    this.#reported.clear();
    this.#view = view;
    this.#departing = false;
    this.#history.viewInstalled(view.viewId, view.members, joined, flushMs);
    this.#ordering = new Map(
      [...this.#byCode].map(([code, factory]) => [
        code,
        factory.create(
          view,
          this.#options.me,
          (header) => {
            this.#control.push({ factory, header, payload: EMPTY });
            this.#drainQueue();
          },
          (callback) => this.#options.clock.defer(callback),
        ),
      ]),
    );
    for (const proposal of this.#early.keys()) {
      if (proposal <= view.viewId) this.#early.delete(proposal);
    }
    for (const member of this.#unreachable) {
      if (!view.members.includes(member)) this.#unreachable.delete(member);
    }
    this.#reliable = new ReliableMulticast({
      ...this.#options.reliable,
      view,
      me: this.#options.me,
      clock: this.#options.clock,
      send: (to, frame) => this.#options.send(to, frame),
      deliver: (sender, seq, payload) => this.#onReliable(sender, seq, payload),
      onWindowOpen: () => this.#drainQueue(),
      onSlow: (member) => this.#report(member, "slow: held up stability"),
      onSuspect: (member, reason) => this.#report(member, reason),
    });
    for (const member of this.#unreachable) {
      this.#reliable.reachable(member, false);
    }
    if (
      this.#receiver !== undefined &&
      this.#receiver.state.transfer !== view.viewId
    ) {
      // Still waiting for the state of an earlier view: this view reaches
      // the application after it, in order.
      this.#pendingApp.push({ view, joined });
    } else {
      this.#viewToApplication(view, joined);
    }
    this.#drainQueue();
  }

  /** Delivers the gbcasts that end the view; this member's own one is done. */
  #deliverGbcasts(gbcasts: readonly GbcastMessage[]): void {
    const ready: OrderedMessage[] = [];
    for (const { member, seq, data } of gbcasts) {
      const payload = fromBase64(data);
      if (payload === undefined) {
        this.#badFrames++;
        continue;
      }
      ready.push({ sender: member, seq, header: EMPTY, payload });
      if (member === this.#options.me && seq === this.#gbcast?.seq) {
        this.#gbcast = undefined;
      }
    }
    this.#toApplication(GBCAST, ready);
  }

  #report(member: MemberId, reason: string): void {
    if (this.#reported.has(member) || member === this.#options.me) return;
    this.#reported.add(member);
    this.#history.suspected(member, reason, this.#view!.viewId);
    this.#options.suspect(member, reason, this.#view!.viewId);
  }
}
