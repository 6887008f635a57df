/**
 * The Oracle client's call table: every request from the call to its
 * settlement, the request numbers and the acknowledged watermark, the
 * `maxInflight` queue, and what each tick does to pending calls
 * (deadlines, overload retries, resends of waiting locks, request
 * timeouts).
 *
 * @module
 */

import type { OracleOp } from "./commands.ts";
import type { OracleClientStats } from "./client.ts";
import type { ResultParser } from "./_client_wire.ts";

/** A request resent to the same (live) target waits at most this many times `requestTimeoutMs`. */
export const MAX_TIMEOUT_FACTOR = 8;
/**
 * A waiting lock request is sent again to the same target after this many
 * times `requestTimeoutMs` without a grant, in case it was lost on the way
 * (the Oracle applies a retried request once; a still-queued retry changes
 * nothing).
 */
const WAIT_RESEND_FACTOR = 10;

/** One request, from the call to its settlement. */
export interface Call {
  readonly op: OracleOp;
  readonly what: string;
  readonly parse: ResultParser<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  /** `Infinity` for waiting locks and internal requests. */
  readonly deadlineAt: number;
  /** A waiting lock: the target's silence is watched by the keep-alive instead. */
  readonly waits: boolean;
  /** open_session, keepalive, close_session: no slot, no open-session gate. */
  readonly internal: boolean;
  /** Request number; 0 until admitted. */
  r: number;
  /** When the request was last handed to the transport for the current target; -1 if not. */
  sentAt: number;
  /** How long to wait for the current target before acting. */
  timeoutMs: number;
  /** Times handed to the transport. */
  sends: number;
  /** After an `overloaded` answer: when to send again (0: not waiting). */
  retryAt: number;
  /** `overloaded` answers so far. */
  overloads: number;
  done: boolean;
}

/** What the call table needs from the client. */
export interface CallHost {
  /** The client's counters. */
  readonly stats: OracleClientStats;
  /** The `requestTimeoutMs` option. */
  readonly requestTimeoutMs: number;
  /** Hands a call (just admitted, or due again) to the send queue. */
  send(call: Call): void;
  /** The current multiplier of `requestTimeoutMs` for the target. */
  timeoutScale(): number;
  /** When the target last answered a request. */
  lastAnswerAt(): number;
  /** The error a call rejects with at its deadline. */
  timeoutError(call: Call): Error;
}

/** The pending calls, by request number, and the calls waiting for a slot. */
export class CallTable {
  readonly #host: CallHost;
  readonly #maxInflight: number;
  #nextR = 1;
  readonly #pending = new Map<number, Call>();
  #userPending = 0;
  #queue: Call[] = [];
  #queueHead = 0;
  #keepalive: Call | undefined = undefined;

  constructor(host: CallHost, maxInflight: number) {
    this.#host = host;
    this.#maxInflight = maxInflight;
  }

  /** Requests sent and not yet answered. */
  get size(): number {
    return this.#pending.size;
  }

  /** The keep-alive request in flight, if any. */
  get keepalive(): Call | undefined {
    return this.#keepalive;
  }

  set keepalive(call: Call | undefined) {
    this.#keepalive = call;
  }

  /** The pending call with request number `r`. */
  get(r: number): Call | undefined {
    return this.#pending.get(r);
  }

  /** The pending calls, in request-number order (live). */
  pending(): IterableIterator<Call> {
    return this.#pending.values();
  }

  /** A copy of the pending calls, in request-number order. */
  snapshot(): Call[] {
    return [...this.#pending.values()];
  }

  /** Whether nothing is pending or queued. */
  idle(): boolean {
    return this.#pending.size === 0 && this.#queueHead >= this.#queue.length;
  }

  /** Whether a new user call must wait: every slot is taken, or others wait already. */
  mustWait(): boolean {
    return this.#userPending >= this.#maxInflight ||
      this.#queueHead < this.#queue.length;
  }

  /** Queues a call until a slot frees (or the session opens). */
  enqueue(call: Call): void {
    this.#queue.push(call);
  }

  /** Calls waiting in the queue and not settled. */
  queuedCount(): number {
    let n = 0;
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      if (!this.#queue[i].done) n++;
    }
    return n;
  }

  /** Numbers a call, makes it pending and sends it. */
  admit(call: Call): void {
    call.r = this.#nextR++;
    this.#pending.set(call.r, call);
    if (!call.internal) this.#userPending++;
    this.#host.send(call);
  }

  /** Admits queued calls while `isOpen()` and slots are free. */
  admitQueued(isOpen: () => boolean): void {
    const queue = this.#queue;
    while (
      isOpen() && this.#userPending < this.#maxInflight &&
      this.#queueHead < queue.length
    ) {
      const call = queue[this.#queueHead++];
      if (!call.done) this.admit(call);
    }
    if (this.#queueHead === queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    }
  }

  /** Rejects every queued call with `error`. */
  failQueued(error: unknown): void {
    const queue = this.#queue;
    this.#queue = [];
    const head = this.#queueHead;
    this.#queueHead = 0;
    for (let i = head; i < queue.length; i++) {
      const call = queue[i];
      if (!call.done) {
        call.done = true;
        call.reject(error);
      }
    }
  }

  /** Settles a call with an error and forgets it. */
  fail(call: Call, error: unknown): void {
    if (call.done) return;
    call.done = true;
    if (call.r !== 0 && this.#pending.get(call.r) === call) {
      this.#pending.delete(call.r);
      if (!call.internal) this.#userPending--;
    }
    if (call === this.#keepalive) this.#keepalive = undefined;
    call.reject(error);
  }

  /** Settles a pending call with its result and forgets it. */
  settle(call: Call, value: unknown): void {
    call.done = true;
    this.#pending.delete(call.r);
    if (!call.internal) this.#userPending--;
    if (call === this.#keepalive) this.#keepalive = undefined;
    call.resolve(value);
  }

  /** The lowest request number still without a reply (every lower one has its reply). */
  ackFloor(): number {
    for (const r of this.#pending.keys()) return r;
    return this.#nextR;
  }

  /**
   * One tick at `now`: rejects calls past their deadline, sends again the
   * calls due after an `overloaded` answer, waiting locks unanswered for a
   * long time, and calls lost on a target that answers others.
   *
   * @returns Whether the target stayed silent past a call's timeout.
   */
  tick(now: number): boolean {
    const host = this.#host;
    const stats = host.stats;
    // Queued calls: deadlines grow along the queue, except waiting locks (Infinity).
    const queue = this.#queue;
    for (let i = this.#queueHead; i < queue.length; i++) {
      const call = queue[i];
      if (call.done || call.deadlineAt === Infinity) continue;
      if (call.deadlineAt > now) break;
      stats.deadlineTimeouts++;
      this.fail(call, host.timeoutError(call));
    }
    let stalled = false;
    for (const call of [...this.#pending.values()]) {
      if (call.done) continue;
      if (call.deadlineAt <= now) {
        stats.deadlineTimeouts++;
        this.fail(call, host.timeoutError(call));
        continue;
      }
      if (call.retryAt > 0) {
        if (call.retryAt <= now && !stalled) {
          call.retryAt = 0;
          host.send(call);
        }
        continue;
      }
      if (call.waits) {
        if (
          call.sentAt >= 0 && !stalled &&
          now - call.sentAt >= host.requestTimeoutMs * WAIT_RESEND_FACTOR
        ) {
          stats.waitResends++;
          call.sentAt = -1;
          host.send(call);
        }
        continue;
      }
      if (call.sentAt < 0 || stalled) continue;
      if (now - call.sentAt < call.timeoutMs * host.timeoutScale()) continue;
      if (host.lastAnswerAt() > call.sentAt) {
        // The target answers others: resend this one (it may have been
        // lost), waiting longer each time.
        call.timeoutMs = Math.min(
          call.timeoutMs * 2,
          host.requestTimeoutMs * MAX_TIMEOUT_FACTOR,
        );
        call.sentAt = -1;
        host.send(call);
      } else {
        stalled = true;
      }
    }
    return stalled;
  }
}
