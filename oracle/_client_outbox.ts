/**
 * The Oracle client's outgoing frames: what to send to the target, built
 * when it is written, queued while the transport pushes back and sent on
 * drain, and held back (dropped, to be regenerated) while the client waits
 * before a new target.
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";
import type { Logger } from "../runtime/log.ts";
import type { PeerId, Transport } from "../transport/transport.ts";
import { JsonCodec } from "../transport/codec.ts";
import type { ClientFrame } from "./wire.ts";
import type { OracleClientStats } from "./client.ts";
import type { Call } from "./_client_calls.ts";
import type { SubscriptionState } from "./_client_subscription.ts";

/** Something to send to the target, built when it is written. */
export type OutItem =
  | { readonly k: "req"; readonly call: Call }
  | { readonly k: "sub"; readonly sub: SubscriptionState }
  | { readonly k: "suback"; readonly id: number; upTo: number }
  | { readonly k: "unsub"; readonly id: number };

type WriteOutcome = "ok" | "full" | "unreachable";

/** What the outbox needs from the client. */
export interface OutboxHost {
  /** The session id, sent with every request. */
  readonly session: string;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly log: Logger;
  /** The client's counters. */
  readonly stats: OracleClientStats;
  /** Whether the client is closed or expired: nothing is sent any more. */
  stopped(): boolean;
  /** The replica frames go to. */
  target(): PeerId;
  /** The acknowledged watermark sent with each request. */
  ackFloor(): number;
  /** Rejects a request that cannot be sent (too big, not encodable). */
  fail(call: Call, error: unknown): void;
  /** The transport cannot reach the target. */
  unreachable(): void;
}

/** The queue of frames for the target, with backpressure and hold. */
export class Outbox {
  readonly #host: OutboxHost;
  readonly #codec = new JsonCodec<ClientFrame>();
  #outbox: OutItem[] = [];
  #outboxHead = 0;
  readonly #subacks = new Map<number, OutItem & { k: "suback" }>();
  #holding = false;
  #holdTimer: TimerId | undefined = undefined;

  constructor(host: OutboxHost) {
    this.#host = host;
  }

  /** Whether sending waits for a delayed target change. */
  get holding(): boolean {
    return this.#holding;
  }

  /**
   * Holds everything back for `delayMs`, then calls `release` (unless the
   * client stopped meanwhile).
   */
  hold(delayMs: number, release: () => void): void {
    this.#holding = true;
    this.#holdTimer = this.#host.clock.setTimer(delayMs, () => {
      this.#holdTimer = undefined;
      this.#holding = false;
      if (this.#host.stopped()) return;
      release();
    });
  }

  /** Cancels the hold timer, if any, leaving the hold flag as it is. */
  clearHoldTimer(): void {
    const id = this.#holdTimer;
    if (id === undefined) return;
    this.#host.clock.clearTimer(id);
    this.#holdTimer = undefined;
  }

  /** Cancels a hold: frames go out again at once. */
  unhold(): void {
    this.clearHoldTimer();
    this.#holding = false;
  }

  /** Drops every queued frame. */
  clear(): void {
    this.#outbox = [];
    this.#outboxHead = 0;
    this.#subacks.clear();
  }

  /** Forgets the queued `suback` of subscription `id`, if any. */
  forgetSuback(id: number): void {
    this.#subacks.delete(id);
  }

  /** Sends an item to the target now, or queues it behind others. */
  put(item: OutItem): void {
    if (this.#host.stopped()) return;
    // While holding, everything is regenerated from state at release.
    if (this.#holding) return;
    if (item.k === "suback") {
      const queued = this.#subacks.get(item.id);
      if (queued !== undefined) {
        queued.upTo = item.upTo;
        return;
      }
    }
    if (this.#outboxHead < this.#outbox.length) {
      this.#enqueueOut(item);
      return;
    }
    const outcome = this.#write(item);
    if (outcome === "full") {
      this.#enqueueOut(item);
    } else if (outcome === "unreachable") {
      this.#host.unreachable();
    }
  }

  #enqueueOut(item: OutItem): void {
    if (item.k === "suback") this.#subacks.set(item.id, item);
    this.#outbox.push(item);
  }

  /** Writes queued items until the transport pushes back again. */
  flush(): void {
    const outbox = this.#outbox;
    while (!this.#holding && this.#outboxHead < outbox.length) {
      const item = outbox[this.#outboxHead];
      const outcome = this.#write(item);
      if (outcome === "full") return;
      this.#outboxHead++;
      if (item.k === "suback") this.#subacks.delete(item.id);
      if (outcome === "unreachable") {
        this.#host.unreachable();
        return;
      }
    }
    if (this.#outbox === outbox && this.#outboxHead === outbox.length) {
      this.#outbox = [];
      this.#outboxHead = 0;
    }
  }

  /** Builds, encodes and hands one item to the transport, to the target. */
  #write(item: OutItem): WriteOutcome {
    const host = this.#host;
    let frame: ClientFrame;
    switch (item.k) {
      case "req": {
        const call = item.call;
        if (call.done) return "ok";
        frame = {
          t: "req",
          s: host.session,
          r: call.r,
          a: host.ackFloor(),
          op: call.op,
        };
        break;
      }
      case "sub":
        if (item.sub.closed) return "ok";
        frame = {
          t: "sub",
          id: item.sub.id,
          path: item.sub.path,
          prefix: item.sub.prefix,
          from: item.sub.next,
        };
        break;
      case "suback":
        frame = { t: "suback", id: item.id, upTo: item.upTo };
        break;
      case "unsub":
        frame = { t: "unsub", id: item.id };
        break;
    }
    let bytes: Uint8Array;
    try {
      bytes = this.#codec.encode(frame);
    } catch (error) {
      if (item.k === "req") host.fail(item.call, error);
      return "ok";
    }
    let accepted: boolean;
    try {
      accepted = host.transport.send(host.target(), bytes);
    } catch (error) {
      if (error instanceof RangeError) {
        if (item.k === "req") {
          host.fail(
            item.call,
            new RangeError(
              `Cannot ${item.call.what}: the request is ${bytes.length} bytes, more than the transport's maximum frame size ${host.transport.maxFrameSize}`,
              { cause: error },
            ),
          );
        }
        return "ok";
      }
      host.log.log("warn", "oracle_client_unreachable", {
        target: host.target(),
        error: String(error),
      });
      return "unreachable";
    }
    if (!accepted) {
      host.stats.transportBackpressure++;
      return "full";
    }
    if (item.k === "req") {
      const call = item.call;
      if (call.sends > 0) host.stats.resends++;
      call.sends++;
      call.sentAt = host.clock.now();
      host.stats.requestsSent++;
    }
    return "ok";
  }

  /** Best-effort frame to a replica other than the target (no queueing). */
  sendAside(peer: PeerId, frame: ClientFrame): void {
    try {
      this.#host.transport.send(peer, this.#codec.encode(frame));
    } catch {
      // Best effort: the peer may be unknown to the transport.
    }
  }
}
