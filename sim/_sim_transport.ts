/**
 * The transport a simulated node incarnation is handed: an endpoint on the
 * simulated network that goes silent once the incarnation is gone.
 *
 * @module
 */

import {
  emptyTransportStats,
  type PeerId,
  type Transport,
  type TransportHandler,
  type TransportStats,
} from "../transport/transport.ts";
import { isAlive, type NodeState } from "./_node_state.ts";

/** What a simulated transport needs from the simulation. */
export interface TransportHost {
  /** The node with id `id`, if there is one. */
  peer(id: PeerId): NodeState | undefined;
  /** Counts a call made through a crashed incarnation's transport. */
  zombie(): void;
  /** Puts a frame of a live transport on the link `from` -> `to`. */
  send(
    from: NodeState,
    to: NodeState,
    transport: SimTransport,
    payload: Uint8Array,
  ): boolean;
}

/** One node incarnation's endpoint on the simulated network. */
export class SimTransport implements Transport {
  readonly id: PeerId;
  readonly maxFrameSize: number;
  /** The incarnation the transport belongs to. */
  readonly incarnation: number;
  /** The handler frames and peer events go to, once set. */
  handler: TransportHandler | undefined;
  /** Whether `close` was called. */
  closed = false;
  /** The counters `stats` copies; the network updates them. */
  readonly counters: TransportStats = emptyTransportStats();
  readonly #host: TransportHost;
  readonly #node: NodeState;

  /**
   * Creates the transport of the node's current incarnation.
   *
   * @param host The simulation.
   * @param node The node.
   * @param maxFrameSize The largest payload `send` accepts.
   */
  constructor(host: TransportHost, node: NodeState, maxFrameSize: number) {
    this.#host = host;
    this.#node = node;
    this.id = node.id;
    this.incarnation = node.incarnation;
    this.maxFrameSize = maxFrameSize;
  }

  /** Whether the transport is open and its incarnation is running. */
  get live(): boolean {
    return !this.closed && isAlive(this.#node, this.incarnation);
  }

  setHandler(handler: TransportHandler): void {
    this.handler = handler;
  }

  send(to: PeerId, payload: Uint8Array): boolean {
    if (payload.length > this.maxFrameSize) {
      this.counters.oversizeRefusals++;
      throw new RangeError(
        `Cannot send ${payload.length} bytes from ${this.id} to ${to}: the maximum frame size is ${this.maxFrameSize}`,
      );
    }
    const target = this.#host.peer(to);
    if (target === undefined) {
      this.counters.unknownPeerRefusals++;
      throw new TypeError(
        `Cannot send from ${this.id} to unknown node ${JSON.stringify(to)}`,
      );
    }
    if (!this.live) {
      this.counters.undeliverableDropped++;
      if (!this.closed) this.#host.zombie();
      return true;
    }
    return this.#host.send(this.#node, target, this, payload);
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
