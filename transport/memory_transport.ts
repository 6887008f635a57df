/**
 * An in-process transport for unit tests of real-time code: a
 * {@linkcode MemoryNetwork} hub hands out {@linkcode MemoryTransport}s that
 * deliver to each other asynchronously, in send order, with bounded queues
 * and backpressure, like a reliable stream transport without sockets.
 *
 * (For seeded tests with faults and virtual time, use the simulator in
 * `@cohort/cohort/sim` instead.)
 *
 * @module
 */

import { checkMaxFrameSize, DEFAULT_MAX_FRAME_SIZE } from "./frame.ts";
import {
  emptyTransportStats,
  type PeerId,
  type Transport,
  type TransportHandler,
  type TransportStats,
} from "./transport.ts";

/** Options of {@linkcode MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /** The largest payload a transport accepts, in bytes. Default 1 MiB. */
  maxFrameSize?: number | undefined;
  /**
   * Most frames queued from one transport to one peer and not yet
   * delivered; beyond it `send` returns `false` until `onDrain`. Default 1024.
   */
  queueLimit?: number | undefined;
}

const FRAME = 0;
const UP = 1;
const DOWN = 2;
const DRAIN = 3;

/** Queue state of one sender -> receiver direction. */
interface Outgoing {
  queued: number;
  refused: boolean;
}

/** The state of one transport, shared by it and its network. */
class Endpoint {
  handler: TransportHandler | undefined;
  closed = false;
  readonly counters: TransportStats = emptyTransportStats();
  readonly #outgoing = new Map<PeerId, Outgoing>();

  constructor(readonly id: PeerId) {}

  outgoing(to: PeerId): Outgoing {
    let out = this.#outgoing.get(to);
    if (out === undefined) {
      out = { queued: 0, refused: false };
      this.#outgoing.set(to, out);
    }
    return out;
  }
}

interface Item {
  kind: typeof FRAME | typeof UP | typeof DOWN | typeof DRAIN;
  /** Who the item is for. */
  target: Endpoint;
  /** The other party. */
  peer: PeerId;
  /** FRAME only: the sender and the copied payload. */
  sender: Endpoint | undefined;
  payload: Uint8Array | undefined;
}

/** What transports need from their network. */
interface Hub {
  readonly maxFrameSize: number;
  attach(endpoint: Endpoint): void;
  send(from: Endpoint, to: PeerId, payload: Uint8Array): boolean;
  leave(endpoint: Endpoint): void;
}

const hubs = new WeakMap<MemoryNetwork, Hub>();

/** Pumps run as microtasks, but yield to the macrotask queue this often. */
const MICROTASK_PUMPS_BEFORE_YIELD = 1024;

/**
 * A hub connecting in-memory transports by peer id.
 *
 * Delivery is asynchronous (never inside `send`), reliable, and in send
 * order per sender and receiver (in fact in one global order). Frames are
 * copied at send. Each transport reports `onPeerUp` for every peer already
 * connected and for each one that connects later, and `onPeerDown` when a
 * peer closes. Peer events and frames travel through the same queue, so a
 * handler installed right after {@linkcode MemoryNetwork.connect} sees them
 * all.
 *
 * Unlike the TCP and UDP transports, which catch and log a handler's
 * exception, this test transport lets it escape: the rest of the batch is
 * still delivered, then the first exception is rethrown as an uncaught
 * error, so that a test with a throwing handler fails loudly.
 *
 * @example Two transports exchange a frame
 * ```ts
 * import { MemoryNetwork } from "@cohort/cohort/transport";
 * import assert from "node:assert/strict";
 *
 * const net = new MemoryNetwork();
 * const a = net.connect("a");
 * const b = net.connect("b");
 * const got = Promise.withResolvers<string>();
 * b.setHandler({ onFrame: (from, payload) => got.resolve(`${from}:${payload[0]}`) });
 * a.setHandler({ onFrame: () => {} });
 * assert.equal(a.send("b", new Uint8Array([7])), true);
 * assert.equal(await got.promise, "a:7");
 * await net.close();
 * ```
 */
export class MemoryNetwork {
  readonly #maxFrameSize: number;
  readonly #queueLimit: number;
  readonly #open = new Map<PeerId, Endpoint>();
  readonly #transports = new Map<PeerId, MemoryTransport>();
  readonly #known = new Set<PeerId>();
  #items: Item[] = [];
  #scheduled = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #microPumps = 0;

  /**
   * Creates an empty hub.
   *
   * @param options Frame size and queue limits.
   * @throws {RangeError} if `maxFrameSize` or `queueLimit` is invalid.
   */
  constructor(options: MemoryNetworkOptions = {}) {
    this.#maxFrameSize = checkMaxFrameSize(
      options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
    );
    const queueLimit = options.queueLimit ?? 1024;
    if (!Number.isSafeInteger(queueLimit) || queueLimit < 1) {
      throw new RangeError(
        `Invalid queueLimit ${queueLimit}: must be a positive integer`,
      );
    }
    this.#queueLimit = queueLimit;
    hubs.set(this, {
      maxFrameSize: this.#maxFrameSize,
      attach: (endpoint) => this.#attach(endpoint),
      send: (from, to, payload) => this.#send(from, to, payload),
      leave: (endpoint) => this.#leave(endpoint),
    });
  }

  /** Ids of the transports currently connected, sorted. */
  get peers(): PeerId[] {
    return [...this.#open.keys()].sort();
  }

  /**
   * Connects a new endpoint (same as `new MemoryTransport(network, id)`).
   *
   * @param id The endpoint's peer id.
   * @returns Its transport.
   * @throws {TypeError} if `id` is empty or an open transport already uses it.
   */
  connect(id: PeerId): MemoryTransport {
    const transport = new MemoryTransport(this, id);
    this.#transports.set(id, transport);
    return transport;
  }

  /**
   * Closes every connected transport.
   *
   * @returns A promise that resolves once they are closed.
   */
  async close(): Promise<void> {
    for (const transport of [...this.#transports.values()]) {
      await transport.close();
    }
    this.#transports.clear();
  }

  #attach(endpoint: Endpoint): void {
    const id = endpoint.id;
    if (typeof id !== "string" || id === "") {
      throw new TypeError(`Invalid peer id ${JSON.stringify(id)}`);
    }
    if (this.#open.has(id)) {
      throw new TypeError(
        `Cannot connect ${
          JSON.stringify(id)
        }: already connected to this network`,
      );
    }
    for (const other of this.#open.values()) {
      this.#enqueue(UP, other, id, undefined, undefined);
      this.#enqueue(UP, endpoint, other.id, undefined, undefined);
    }
    this.#open.set(id, endpoint);
    this.#known.add(id);
  }

  #send(from: Endpoint, to: PeerId, payload: Uint8Array): boolean {
    if (!this.#known.has(to)) {
      from.counters.unknownPeerRefusals++;
      throw new TypeError(
        `Cannot send from ${from.id} to ${
          JSON.stringify(to)
        }: no such peer on this network`,
      );
    }
    const target = this.#open.get(to);
    if (target === undefined) {
      from.counters.undeliverableDropped++;
      return true;
    }
    const out = from.outgoing(to);
    if (out.queued >= this.#queueLimit) {
      from.counters.backpressureRefusals++;
      out.refused = true;
      return false;
    }
    out.queued++;
    from.counters.framesSent++;
    from.counters.bytesSent += payload.length;
    this.#enqueue(FRAME, target, from.id, from, payload.slice());
    return true;
  }

  #leave(endpoint: Endpoint): void {
    if (this.#open.get(endpoint.id) !== endpoint) return;
    this.#open.delete(endpoint.id);
    for (const other of this.#open.values()) {
      this.#enqueue(DOWN, other, endpoint.id, undefined, undefined);
    }
    if (this.#open.size === 0) {
      this.#items = [];
      if (this.#timer !== undefined) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#scheduled = false;
      }
    }
  }

  #enqueue(
    kind: Item["kind"],
    target: Endpoint,
    peer: PeerId,
    sender: Endpoint | undefined,
    payload: Uint8Array | undefined,
  ): void {
    this.#items.push({ kind, target, peer, sender, payload });
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    if (this.#microPumps < MICROTASK_PUMPS_BEFORE_YIELD) {
      this.#microPumps++;
      queueMicrotask(() => this.#pump());
    } else {
      this.#microPumps = 0;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, 0);
    }
  }

  /** Delivers what was queued before this pump started. */
  #pump(): void {
    if (!this.#scheduled) return; // cancelled by the last close
    this.#scheduled = false;
    const batch = this.#items;
    this.#items = [];
    let failure: { error: unknown } | undefined;
    for (const item of batch) {
      try {
        this.#dispatch(item);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (this.#items.length === 0) this.#microPumps = 0;
    if (failure !== undefined) throw failure.error;
  }

  #dispatch(item: Item): void {
    const target = item.target;
    if (item.kind === FRAME) {
      const sender = item.sender!;
      const out = sender.outgoing(target.id);
      out.queued--;
      if (out.refused && out.queued <= this.#queueLimit >> 1) {
        out.refused = false;
        this.#enqueue(DRAIN, sender, target.id, undefined, undefined);
      }
      const handler = target.handler;
      if (sender.closed || target.closed || handler === undefined) {
        sender.counters.undeliverableDropped++;
        return;
      }
      const payload = item.payload!;
      target.counters.framesReceived++;
      target.counters.bytesReceived += payload.length;
      handler.onFrame(sender.id, payload);
      return;
    }
    if (target.closed) return;
    const handler = target.handler;
    if (item.kind === UP) {
      target.counters.connectionsOpened++;
      handler?.onPeerUp?.(item.peer);
    } else if (item.kind === DOWN) {
      target.counters.connectionsClosed++;
      handler?.onPeerDown?.(item.peer);
    } else {
      handler?.onDrain?.(item.peer);
    }
  }
}

/**
 * One endpoint of a {@linkcode MemoryNetwork}.
 *
 * After {@linkcode MemoryTransport.close}, frames it sends are dropped
 * (counted as `undeliverableDropped`) and frames queued to or from it are
 * never delivered.
 *
 * @example Backpressure: a full queue refuses, then drains
 * ```ts
 * import { MemoryNetwork, MemoryTransport } from "@cohort/cohort/transport";
 * import assert from "node:assert/strict";
 *
 * const net = new MemoryNetwork({ queueLimit: 2 });
 * const a = new MemoryTransport(net, "a");
 * const b = new MemoryTransport(net, "b");
 * b.setHandler({ onFrame: () => {} });
 * const drained = Promise.withResolvers<string>();
 * a.setHandler({ onFrame: () => {}, onDrain: (peer) => drained.resolve(peer) });
 * const frame = new Uint8Array(8);
 * assert.deepEqual([a.send("b", frame), a.send("b", frame), a.send("b", frame)], [true, true, false]);
 * assert.equal(await drained.promise, "b");
 * await a.close();
 * await b.close();
 * ```
 */
export class MemoryTransport implements Transport {
  /** This endpoint's peer id. */
  readonly id: PeerId;
  /** The largest payload {@linkcode MemoryTransport.send} accepts. */
  readonly maxFrameSize: number;
  readonly #endpoint: Endpoint;
  readonly #hub: Hub;

  /**
   * Connects a new endpoint to `network` (same as
   * {@linkcode MemoryNetwork.connect}, but not tracked by its `close`).
   *
   * @param network The hub to join.
   * @param id The endpoint's peer id.
   * @throws {TypeError} if `id` is empty or an open transport already uses it.
   */
  constructor(network: MemoryNetwork, id: PeerId) {
    const hub = hubs.get(network);
    if (hub === undefined) {
      throw new TypeError("MemoryTransport needs a MemoryNetwork");
    }
    this.id = id;
    this.maxFrameSize = hub.maxFrameSize;
    this.#hub = hub;
    this.#endpoint = new Endpoint(id);
    hub.attach(this.#endpoint);
  }

  /**
   * Installs the handler that receives frames and peer events.
   *
   * @param handler The callbacks.
   */
  setHandler(handler: TransportHandler): void {
    this.#endpoint.handler = handler;
  }

  /**
   * Queues a copy of `payload` for `to`; it is delivered later, never
   * during this call.
   *
   * @param to The receiving peer.
   * @param payload The bytes; the caller may reuse the buffer at once.
   * @returns `true` if accepted (or dropped because this transport is
   * closed or `to` has left), `false` if the queue to `to` is full: wait for
   * `onDrain`.
   * @throws {RangeError} if the payload exceeds `maxFrameSize`.
   * @throws {TypeError} if `to` never connected to the network.
   */
  send(to: PeerId, payload: Uint8Array): boolean {
    const endpoint = this.#endpoint;
    if (payload.length > this.maxFrameSize) {
      endpoint.counters.oversizeRefusals++;
      throw new RangeError(
        `Cannot send ${payload.length} bytes from ${this.id} to ${to}: the maximum frame size is ${this.maxFrameSize}`,
      );
    }
    if (endpoint.closed) {
      endpoint.counters.undeliverableDropped++;
      return true;
    }
    return this.#hub.send(endpoint, to, payload);
  }

  /**
   * A snapshot of this transport's counters.
   *
   * @returns A copy of the counters.
   */
  stats(): TransportStats {
    return { ...this.#endpoint.counters };
  }

  /**
   * Leaves the network: peers get `onPeerDown`, queued frames are dropped.
   *
   * @returns A promise that resolves at once.
   */
  close(): Promise<void> {
    if (!this.#endpoint.closed) {
      this.#endpoint.closed = true;
      this.#hub.leave(this.#endpoint);
    }
    return Promise.resolve();
  }
}
