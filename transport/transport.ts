/**
 * The transport contract every Cohort layer is written against: addressed
 * peers, framed payloads, connection events and backpressure.
 *
 * The same interface is implemented by the TCP, UDP and in-memory
 * transports and by the simulator's network, so protocol code never knows
 * which one carries its frames.
 *
 * @module
 */

import type { Logger } from "../runtime/log.ts";

/** The name of an endpoint, unique in a cluster (for example `"n1"`). */
export type PeerId = string;

/**
 * The options every network transport takes: `TcpTransportOptions` and
 * `UdpTransportOptions` extend it with their own. What a field means in
 * detail for one transport (the longest id, the form of addresses, how the
 * secret is used, the default of `maxQueueBytes`) is documented on the
 * extending interface.
 */
export interface TransportOptions {
  /**
   * This endpoint's peer id: non-empty, unique in the cluster, and no
   * longer in UTF-8 bytes than the transport allows.
   */
  id: PeerId;
  /**
   * Peers this endpoint knows, by id, with their `"host:port"` address
   * (`"[::1]:7000"` for IPv6).
   */
  peers?: Record<PeerId, string> | undefined;
  /**
   * The cluster secret. When set, peers prove they hold it with
   * HMAC-SHA-256, and a peer without it, or with another one, is refused.
   * Both ends must agree on whether one is set.
   */
  secret?: string | Uint8Array | undefined;
  /** Largest payload sent or accepted, in bytes. Default 1 MiB. */
  maxFrameSize?: number | undefined;
  /**
   * Bound on the bytes queued for sending: at the bound `send` returns
   * `false`, and `onDrain` follows once there is room. The default depends
   * on the transport.
   */
  maxQueueBytes?: number | undefined;
  /**
   * Accept peers that are not in `peers`. Default `false`: what they send
   * is refused and counted in `unknownPeerRefusals`.
   */
  acceptUnknownPeers?: boolean | undefined;
  /** Where events are reported. Default: `silentLogger`. */
  logger?: Logger | undefined;
}

/**
 * Receives what a transport delivers. Every callback is optional except
 * {@linkcode TransportHandler.onFrame}.
 */
export interface TransportHandler {
  /**
   * Called once per received frame, in the order the transport delivers
   * them. The payload is a view that is only valid during the call: copy it
   * (`payload.slice()`) to keep it.
   */
  onFrame(from: PeerId, payload: Uint8Array): void;
  /** Called when a connection to `peer` is established and authenticated. */
  onPeerUp?: ((peer: PeerId) => void) | undefined;
  /** Called when the connection to `peer` is lost or closed. */
  onPeerDown?: ((peer: PeerId) => void) | undefined;
  /**
   * Called when the send queue to `peer`, which had refused a frame because
   * it was full, has room again.
   */
  onDrain?: ((peer: PeerId) => void) | undefined;
}

/**
 * Counters every transport keeps. They only grow; read them with
 * {@linkcode Transport.stats}.
 */
export interface TransportStats {
  /** Frames accepted by {@linkcode Transport.send}. */
  framesSent: number;
  /** Payload bytes accepted by {@linkcode Transport.send}. */
  bytesSent: number;
  /** Frames handed to {@linkcode TransportHandler.onFrame}. */
  framesReceived: number;
  /** Payload bytes handed to {@linkcode TransportHandler.onFrame}. */
  bytesReceived: number;
  /** Frames refused by `send` because the peer's queue was full. */
  backpressureRefusals: number;
  /** Frames refused by `send` because they exceed the maximum frame size. */
  oversizeRefusals: number;
  /** Received frames or datagrams dropped as malformed (bad magic, version, length, truncation). */
  malformedDropped: number;
  /** Connections or datagrams refused because the peer failed authentication. */
  authFailures: number;
  /** Connections or datagrams refused because the peer is not known. */
  unknownPeerRefusals: number;
  /** Connections dropped because the peer sent nothing in time or flooded. */
  misbehavingDisconnects: number;
  /**
   * Frames accepted by `send` but dropped because the peer cannot be
   * reached (no address to dial and no open connection).
   */
  undeliverableDropped: number;
  /** Connections established (including reconnections). */
  connectionsOpened: number;
  /** Connections lost or closed. */
  connectionsClosed: number;
}

/** Returns a {@linkcode TransportStats} with every counter at zero. */
export function emptyTransportStats(): TransportStats {
  return {
    framesSent: 0,
    bytesSent: 0,
    framesReceived: 0,
    bytesReceived: 0,
    backpressureRefusals: 0,
    oversizeRefusals: 0,
    malformedDropped: 0,
    authFailures: 0,
    unknownPeerRefusals: 0,
    misbehavingDisconnects: 0,
    undeliverableDropped: 0,
    connectionsOpened: 0,
    connectionsClosed: 0,
  };
}

/**
 * Moves framed payloads between addressed peers.
 *
 * Delivery guarantees depend on the implementation and are stated in its
 * documentation: TCP delivers in order per connection but may lose what was
 * in flight when a connection breaks; UDP may lose, duplicate and reorder.
 * Layers above must cope with both.
 */
export interface Transport {
  /** This endpoint's own peer id. */
  readonly id: PeerId;
  /** The largest payload, in bytes, that {@linkcode Transport.send} accepts. */
  readonly maxFrameSize: number;
  /**
   * Installs the handler that receives frames and connection events.
   * Frames that arrive before a handler is installed are dropped.
   */
  setHandler(handler: TransportHandler): void;
  /**
   * Queues one frame for `to`. Returns `true` if the frame was accepted and
   * `false` if it was refused because the queue to `to` is full
   * (backpressure: wait for {@linkcode TransportHandler.onDrain}). The
   * transport copies `payload` before it returns, so the caller may reuse
   * its buffer (for example a codec's).
   *
   * @throws {RangeError} if the payload is larger than `maxFrameSize`.
   * @throws {TypeError} if `to` was never heard of (no address, never connected).
   */
  send(to: PeerId, payload: Uint8Array): boolean;
  /** Returns a snapshot of the transport's counters. */
  stats(): TransportStats;
  /** Closes every connection and socket; pending frames are dropped. */
  close(): Promise<void>;
}
